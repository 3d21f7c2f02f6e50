"""Atomic writes: a file is either its old content or its new one, never half of either."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from lesam.core.errors import UserError


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


def load_weights(path: Path, advice: str) -> Any:
    """A checkpoint or weights file, loaded without running any code from it.

    torch.load(weights_only=True) rebuilds only tensors and plain containers; a file that needs
    anything else (a pickled class or function, which could run code) is refused, as is a file
    that cannot be read. `.safetensors` files are read with safetensors. Both end in one line
    that names the file, followed by `advice`.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"refused to load '{path}': it is not made of tensors and plain containers alone (a pickled object "
            f"could run code when loaded, so only weights-only files are read); {advice}"
        ) from error
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"cannot read '{path}' ({type(error).__name__}: corrupt or truncated?); {advice}") from error
