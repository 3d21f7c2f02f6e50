"""train.py with one fault injected at a set moment, for the fault tests.

    python tests/faulty_train.py <fault>:<n> <train.py overrides...>

The fault happens at the n-th time this process reaches its moment (see FAULTS): `kill-after-step:2`
ends the process with SIGKILL right after optimizer step 2, `sigterm-after-step:2` sends it SIGTERM
there. The faults are patched into this process alone, so the product code carries no test hook.
"""

from __future__ import annotations

import errno
import io
import json
import os
import runpy
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch

from lesam.core.run_folder import RunFolder
from lesam.engine.guards import StepGuard

ROOT = Path(__file__).resolve().parents[1]


def die() -> None:
    """What kill -9 does: no handler, no cleanup, no flush."""
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(owner: object, name: str, n: int, fault: Callable) -> None:
    """Replace `owner.name` by a function that calls `fault(original, *args)` on its n-th call."""
    original, calls = getattr(owner, name), [0]

    def patched(*args, **kwargs):
        calls[0] += 1
        return fault(original, *args, **kwargs) if calls[0] == n else original(*args, **kwargs)

    setattr(owner, name, patched)


def then_die(original: Callable, *args) -> None:
    original(*args)
    die()


def half_a_line_then_die(original: Callable, folder: RunFolder, record: dict) -> None:
    """Half of the metrics line reaches the disk, as when the process dies in the middle of the write."""
    line = (json.dumps(record) + "\n").encode()
    with open(folder.metrics, "ab") as f:
        f.write(line[: len(line) // 2])
        f.flush()
        os.fsync(f.fileno())
    die()


def half_a_checkpoint_then_die(original: Callable, obj: object, f: IO[bytes]) -> None:
    """torch.save, killed when half of the file is on the disk."""
    whole = io.BytesIO()
    original(obj, whole)
    f.write(whole.getvalue()[: whole.tell() // 2])
    f.flush()
    os.fsync(f.fileno())
    die()


class FullDisk:
    """A file that takes `room` more bytes, then fails each write as a full disk does."""

    def __init__(self, f: IO[bytes], room: int) -> None:
        self.f, self.room = f, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.f.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def save_on_a_full_disk(original: Callable, obj: object, f: IO[bytes]) -> None:
    """torch.save into a file whose disk fills up after 100 kB (torch then raises its own error)."""
    original(obj, FullDisk(f, 100_000))


class CtrlCTwice:
    """A file whose third write (one torch makes for its archive) is interrupted by two Ctrl-C 20 ms apart,
    as an impatient user presses them."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.writes = f, 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 3:
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.02)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def save_with_two_ctrl_c(original: Callable, obj: object, f: IO[bytes]) -> None:
    """torch.save, with two Ctrl-C while it writes."""
    original(obj, CtrlCTwice(f))


def after_step(n: int, fault: Callable[[], None]) -> None:
    after = StepGuard.after

    def after_then_fault(self: StepGuard, step: int) -> None:
        after(self, step)
        if step == n:
            fault()

    StepGuard.after = after_then_fault


def send(signum: int) -> Callable[[], None]:
    """What a stop signal from outside does: the run stops at the next step boundary."""
    return lambda: os.kill(os.getpid(), signum)


FAULTS = {  # name -> patch this process to fail at the n-th moment
    "kill-after-step": lambda n: after_step(n, die),  # right after optimizer step n (counted over the whole run)
    "sigterm-after-step": lambda n: after_step(n, send(signal.SIGTERM)),  # preemption, a time limit
    "sigint-after-step": lambda n: after_step(n, send(signal.SIGINT)),  # Ctrl-C
    "sigusr1-after-step": lambda n: after_step(n, send(signal.SIGUSR1)),
    "kill-after-metrics": lambda n: on_call(RunFolder, "append_metrics", n, then_die),  # before line n's checkpoint
    "kill-in-metrics": lambda n: on_call(RunFolder, "append_metrics", n, half_a_line_then_die),  # a cut-off line
    "kill-in-checkpoint": lambda n: on_call(torch, "save", n, half_a_checkpoint_then_die),  # a half-written temporary
    "kill-after-checkpoint": lambda n: on_call(RunFolder, "save_checkpoint", n, then_die),  # between two epochs
    "full-disk-in-checkpoint": lambda n: on_call(torch, "save", n, save_on_a_full_disk),  # ENOSPC
    "two-ctrl-c-in-checkpoint": lambda n: on_call(torch, "save", n, save_with_two_ctrl_c),
}

if __name__ == "__main__":
    name, _, n = sys.argv[1].partition(":")
    FAULTS[name](int(n))
    sys.argv = [str(ROOT / "train.py"), *sys.argv[2:]]
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
