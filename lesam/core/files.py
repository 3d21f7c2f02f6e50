"""Atomic writes: a file is either its old content or its new one, never half of either."""

from __future__ import annotations

import json
import os
import pickle
import secrets
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from lesam.core.errors import UserError

LEGACY_TORCH_FILE = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)  # how torch.save began a file before 1.6
TEMPORARY = ".*.tmp"  # the names of atomic writes in progress (left behind by a process killed while writing)


class WriteFailed(UserError):
    """A file could not be written (a full disk, a quota, a lost mount); an atomically written file is as it was."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"could not write {path}: {error.strerror or error}")


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Report an OSError raised while writing `path` as WriteFailed, which names the file.

    A writer may raise its own error while handling the OSError (torch.save on a full disk raises
    RuntimeError "unexpected pos"): the OSError it was handling is the one reported.
    """
    try:
        yield
    except Exception as error:
        reason = _os_error(error)
        if reason is None:
            raise
        raise WriteFailed(path, reason) from error


def _os_error(error: BaseException | None) -> OSError | None:
    """`error` if it is an OSError, else the first OSError it was raised from or while handling."""
    seen = set()
    while error is not None and id(error) not in seen and not isinstance(error, OSError):
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return error


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through `write` into a temporary file beside `path`, fsync it, then rename it over.

    The file gets the permissions of any new file (0666 less the umask), as a plain open() would.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"  # matches TEMPORARY
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
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
        if _saved_by_torch(path):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"refused to load '{path}': it is not made of tensors and plain containers alone (a pickled object "
            f"could run code when loaded, so only weights-only files are read); {advice}"
        ) from error
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"cannot read '{path}' ({type(error).__name__}: corrupt or truncated?); {advice}") from error
    raise UserError(f"cannot read '{path}': it is not a file torch.save wrote (corrupt or truncated?); {advice}")


def _saved_by_torch(path: Path) -> bool:
    """Whether `path` begins as torch.save's files do: a zip archive, or (before PyTorch 1.6) a pickled magic number."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as file:
        return file.read(len(LEGACY_TORCH_FILE)) == LEGACY_TORCH_FILE
