"""Atomic writes: a file is either its old content or its new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through `write` into a temporary file beside `path`, fsync it, then rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically write a text file."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: Path, record: Any) -> None:
    """Atomically write a JSON file (indented, keys in order of insertion)."""
    write_text(path, json.dumps(record, indent=2) + "\n")


def save_torch(path: Path, obj: Any) -> None:
    """Atomically torch.save an object."""
    atomic_write(path, lambda f: torch.save(obj, f))
