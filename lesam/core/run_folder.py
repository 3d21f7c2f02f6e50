"""One run's folder: its config, per-epoch metrics, final result and checkpoint."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from omegaconf import DictConfig, OmegaConf

from lesam.core.errors import UserError
from lesam.core.files import TEMPORARY, load_weights, save_torch, write_json, write_text, writing
from lesam.core.folder_lock import FolderInUse, FolderLock

LINE_FILES = ("metrics", "rho")  # the files of one line per epoch, as RunFolder names them
DIVERGED = "diverged"  # final.json's status of a run that ended with a non-finite test loss or weights


class RunFolder:
    """`.hydra/` (the composed config), `metrics.jsonl`, `rho.jsonl`, `final.json`, `last.pt` and `train.log`.

    `.lock` is held by the one process that writes the folder (see FolderLock). The lines of
    metrics.jsonl and rho.jsonl are also kept in `lines`, which the checkpoint holds: it vouches
    for them, and mends them when the files are damaged.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metrics = self.path / "metrics.jsonl"
        self.rho = self.path / "rho.jsonl"
        self.final = self.path / "final.json"
        self.checkpoint = self.path / "last.pt"
        self.log = self.path / "train.log"
        self.lines: dict[str, list[dict]] = {name: [] for name in LINE_FILES}  # what they hold, for last.pt
        self._lock = FolderLock(self.path)

    def is_finished(self) -> bool:
        """Whether the run has written its result."""
        return self.final.exists()

    def read_final(self) -> dict:
        """The run's result."""
        return json.loads(self.final.read_text())

    def is_diverged(self) -> bool:
        """Whether the run ended diverged (final.json's `status`): it has no result to count."""
        return self.is_finished() and self.read_final().get("status") == DIVERGED

    @contextmanager
    def removed_on_failure(self) -> Iterator[None]:
        """Remove the folder again if it was new and the block fails before the run has written a result (a
        metrics line, a checkpoint, final.json): no half-written runs, no lost results.

        A folder that holds nothing but a lock file is new (a run killed at its start leaves one);
        a failure to take the lock leaves the folder to the process that holds it.
        """
        new = not self.path.exists() or all(p == self._lock.file for p in self.path.iterdir())
        try:
            yield
        except FolderInUse:
            raise
        except BaseException:
            if new and not any(p.exists() for p in (self.metrics, self.checkpoint, self.final)):
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def lock(self) -> None:
        """Take the folder for this process (FolderInUse if another one has it)."""
        self._lock.take()

    def unlock(self) -> None:
        """Let the folder go."""
        self._lock.release()

    def remove_temporaries(self) -> None:
        """Remove the temporary files of atomic writes that a killed process left half-written."""
        for tmp in [*self.path.glob(TEMPORARY), *self.path.glob(f".hydra/{TEMPORARY}")]:
            tmp.unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Fail early, with the folder named, if the run could not write its files."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"cannot create the run folder '{self.path}' ({error.strerror}); set output_root=<a writable folder>"
            ) from error
        if not os.access(self.path, os.W_OK):
            raise UserError(f"the run folder '{self.path}' is not writable; set output_root=<a writable folder>")

    def write_config(self, cfg: DictConfig, overrides: list[str]) -> None:
        """Save the composed config and the command-line overrides under .hydra/."""
        write_text(self.path / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
        write_text(self.path / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(overrides)))

    def append_metrics(self, record: dict) -> None:
        """Append one epoch's line and make it durable."""
        self._append("metrics", record)

    def append_rho(self, record: dict) -> None:
        """Append one epoch's per-step radii to rho.jsonl and make them durable."""
        self._append("rho", record)

    def _append(self, name: str, record: dict) -> None:
        append_line(getattr(self, name), record)
        self.lines[name].append(record)

    def read_metrics(self) -> list[dict]:
        """All epoch lines written so far."""
        return read_lines(self.metrics)

    def keep_lines_through(self, epoch: int, saved: dict | None) -> list[str]:
        """Make metrics.jsonl and rho.jsonl hold the lines of the epochs up to `epoch`, the checkpoint's (0 without
        one), and no others: lines written after the checkpoint, and a line cut off, are dropped (the run writes
        them again). `saved` is the checkpoint's copy of its lines (`lines`); a line of its epochs that is damaged
        or missing in the file is written again from it. Returns one note per file that was mended, or whose
        damaged lines a checkpoint without a copy (an older version's) could not mend."""
        notes = []
        for name in LINE_FILES:
            path = getattr(self, name)
            found, damaged = parse_lines(path)
            found = [r for r in found if r["epoch"] <= epoch]
            kept = found if saved is None else saved[name]
            on_disk = {json.dumps(r) for r in found}
            mended = [r["epoch"] for r in kept if json.dumps(r) not in on_disk]
            if mended:
                notes.append(
                    f"{path.name}: the lines of epochs {_listed(mended)} were damaged or missing; wrote them again "
                    f"from {self.checkpoint.name}"
                )
            elif damaged and saved is None and epoch:
                notes.append(
                    f"{path.name}: left out its damaged lines {_listed(damaged)}; {self.checkpoint.name} (written by "
                    "an older version) holds no copy of them"
                )
            text = "".join(json.dumps(r) + "\n" for r in kept)
            if text != (path.read_text(errors="replace") if path.exists() else ""):
                write_text(path, text)
            self.lines[name] = list(kept)
        return notes

    def write_final(self, record: dict) -> None:
        """Write the run's result; its presence marks the run finished."""
        write_json(self.final, record)

    def save_checkpoint(self, state: dict) -> None:
        """Atomically replace last.pt."""
        save_torch(self.checkpoint, state)

    def load_checkpoint(self) -> dict | None:
        """last.pt, loaded without running any code; None if there is none."""
        if not self.checkpoint.exists():
            return None
        return load_weights(self.checkpoint, advice="move it away to start the run over, or delete the run folder")


class ReplicaFolder(RunFolder):
    """The run folder as a process other than rank 0 sees it: read, never written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.log = Path(os.devnull)

    @contextmanager
    def removed_on_failure(self) -> Iterator[None]:
        """Rank 0 alone cleans up."""
        yield

    def check_writable(self) -> None:
        """Rank 0 alone writes."""

    def lock(self) -> None:
        """Rank 0 alone writes, and holds the lock."""

    def unlock(self) -> None:
        """Rank 0 alone holds the lock."""

    def remove_temporaries(self) -> None:
        """Rank 0 alone writes."""

    def write_config(self, cfg: DictConfig, overrides: list[str]) -> None:
        """Rank 0 alone writes."""

    def append_metrics(self, record: dict) -> None:
        """Rank 0 alone writes."""

    def keep_lines_through(self, epoch: int, saved: dict | None) -> list[str]:
        """Rank 0 alone writes."""
        return []

    def write_final(self, record: dict) -> None:
        """Rank 0 alone writes."""

    def save_checkpoint(self, state: dict) -> None:
        """Rank 0 alone writes."""

    def append_rho(self, record: dict) -> None:
        """Rank 0 alone writes."""


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line to `path` and make it durable; a cut-off last line is dropped first, not glued onto."""
    with writing(path), open(path, "a+b") as f:
        _drop_cut_off_line(f)
        f.write(json.dumps(record).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def _drop_cut_off_line(f: IO[bytes]) -> None:
    """Truncate a file open for appending to its last newline, if it does not end with one."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) != b"\n":
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)


def _listed(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


def parse_lines(path: Path) -> tuple[list[dict], list[int]]:
    """The epoch records of `path`'s whole lines, and the numbers of the lines that are not one (damaged)."""
    records, damaged = [], []
    lines = path.read_text(errors="replace").split("\n")[:-1] if path.exists() else []  # as read_lines
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            records.append(record)
        else:
            damaged.append(number)
    return records, damaged


def read_lines(path: Path) -> list[dict]:
    """The JSON lines of `path` ([] if there is no file); a last line without its newline was cut off by
    a crash and is left out."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # the piece after the last newline is never whole
    return [json.loads(line) for line in lines if line.strip()]
