"""kill -9 or a stop signal at any moment, a full disk, two processes on one folder: no result lost, none counted twice.

Each fault is injected by tests/faulty_train.py into a real `train.py` process; the same command
run again afterwards must end with the files and weights of a run that was never interrupted.
"""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from processes import weights, worker_env

from conftest import ROOT, TINY, smoke_overrides
from lesam.core.run_folder import read_lines
from lesam.engine.cli import ABORTED

TIMING = {"seconds", "train_seconds", "images_per_s"}
KILLED = -signal.SIGKILL


def overrides(root: Path, *extra: str) -> list[str]:
    """3 epochs of 4 steps; BatchNorm, augmentation and LE-SAM's radii, so all their state must resume."""
    tiny = [*TINY["small_cnn"], "optimizer=lesam", "dataset.augment=basic", "trainer.rho_every=1"]
    return smoke_overrides(root, "model=small_cnn", *tiny, "trainer.epochs=3", *extra)


def train(root: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    """`python train.py` (with `fault` injected) into root/<run id>, to its end."""
    script = ["tests/faulty_train.py", fault] if fault else ["train.py"]
    command = [sys.executable, *script, *overrides(root)]
    return subprocess.run(command, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=600)


def the_folder(root: Path) -> Path:
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def left_behind(folder: Path) -> tuple:
    """The checkpoint's epoch (None: no last.pt), whole metrics lines, whether a cut-off line follows them,
    and whether an atomic write's temporary file is there."""
    checkpoint = folder / "last.pt"
    epoch = torch.load(checkpoint, weights_only=True)["trainer"]["epoch"] if checkpoint.exists() else None
    metrics = folder / "metrics.jsonl"
    text = metrics.read_text() if metrics.exists() else ""
    return epoch, text.count("\n"), not text.endswith("\n") and bool(text), any(folder.glob(".*.tmp"))


def files(folder: Path) -> dict:
    """What must match an uninterrupted run: metrics.jsonl, rho.jsonl and final.json (timings aside)."""
    final = json.loads((folder / "final.json").read_text())
    return {
        "metrics": [{k: v for k, v in r.items() if k not in TIMING} for r in read_lines(folder / "metrics.jsonl")],
        "metrics_text_whole": (folder / "metrics.jsonl").read_text().endswith("\n"),
        "rho": (folder / "rho.jsonl").read_text(),
        "final": {k: v for k, v in final.items() if k not in TIMING},
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted")
    result = train(root)
    assert result.returncode == 0, result.stderr[-3000:]
    return the_folder(root)


FAULTS = [  # the fault, the exit status it gives, what it leaves (as `left_behind` reads it)
    ("kill-after-step:2", KILLED, (None, 0, False, False)),  # inside the first epoch
    ("kill-after-metrics:1", KILLED, (None, 1, False, False)),  # epoch 1's lines written, not its checkpoint
    ("kill-in-checkpoint:1", KILLED, (None, 1, False, True)),  # while writing the first checkpoint
    ("kill-after-checkpoint:1", KILLED, (1, 1, False, False)),  # between epochs 1 and 2
    ("kill-after-step:6", KILLED, (1, 1, False, False)),  # inside epoch 2
    ("kill-in-metrics:2", KILLED, (1, 1, True, False)),  # while appending epoch 2's line
    ("kill-after-metrics:2", KILLED, (1, 2, False, False)),  # epoch 2's line written, not its checkpoint
    ("kill-in-checkpoint:2", KILLED, (1, 2, False, True)),  # while writing the second checkpoint
    ("kill-after-checkpoint:3", KILLED, (3, 3, False, False)),  # after the last checkpoint, before final.json
    ("full-disk-in-checkpoint:2", 2, (1, 2, False, False)),  # the disk fills up while a checkpoint is written
    ("sigint-after-step:2", 128 + signal.SIGINT, (0, 0, False, False)),  # Ctrl-C inside the first epoch
    ("sigterm-after-step:6", 128 + signal.SIGTERM, (1, 1, False, False)),  # preemption inside epoch 2
    ("sigusr1-after-step:9", 128 + signal.SIGUSR1, (2, 2, False, False)),  # a time limit on the last epoch's step 1
    ("two-ctrl-c-in-checkpoint:2", 128 + signal.SIGINT, (1, 2, False, True)),  # the second aborts the write
]


@pytest.mark.slow
@pytest.mark.parametrize("fault,status,left", FAULTS, ids=[fault for fault, _, _ in FAULTS])
def test_a_fault_then_the_same_command_ends_as_an_uninterrupted_run(fault, status, left, uninterrupted, tmp_path):
    faulty = train(tmp_path, fault)
    assert faulty.returncode == status, faulty.stderr[-3000:]
    folder = the_folder(tmp_path)
    assert left_behind(folder) == left
    if status == 2:  # one line, no traceback
        written = folder / "last.pt"
        message = f"error: could not write {written}: No space left on device; the previous checkpoint is kept"
        assert faulty.stderr.splitlines() == [message]

    again = train(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert files(folder) == files(uninterrupted)
    a, b = weights(uninterrupted), weights(folder)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(folder.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("lock_file", ["kept", "deleted"])  # deleted: while the first run holds it
def test_a_second_process_on_a_run_folder_refuses_with_one_line(lock_file, tmp_path):
    command = [sys.executable, "train.py", *overrides(tmp_path, "dataset.num_train=1024", "trainer.epochs=50")]
    first = subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in first.stdout:
            if line.startswith(b"epoch 1:"):
                break
        if lock_file == "deleted":
            (the_folder(tmp_path) / ".lock").unlink()
        second = subprocess.run(command, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=300)
    folder = the_folder(tmp_path)
    holder = f"process {first.pid} on {socket.gethostname()}" if lock_file == "kept" else "another process"
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.splitlines() == [
        f"error: the run folder '{folder}' is in use by {holder}; "
        "wait for that run to end (or stop it) before starting it again"
    ]
    assert first.returncode == 128 + signal.SIGTERM  # the first run went on until stopped
    epochs = [r["epoch"] for r in read_lines(folder / "metrics.jsonl")]
    assert epochs == list(range(1, len(epochs) + 1)) and epochs  # each epoch once: nothing from the second


@pytest.mark.slow
@pytest.mark.parametrize("moment", [0.0, 0.05, 0.2, 0.5])  # seconds after epoch 1's line
def test_two_ctrl_c_at_any_moment_end_train_py_with_one_line_each(moment, tmp_path):
    """Two Ctrl-C 20 ms apart, into training steps or a checkpoint being written: exit 130, no traceback, and
    the same command then ends the run."""
    big = ["model=mlp", "model.hidden=[2048,2048]", "dataset.num_train=32", "trainer.epochs=8"]  # slow checkpoints
    command = [sys.executable, "train.py", *smoke_overrides(tmp_path, *big)]
    train = subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in train.stdout:
        if line.startswith(b"epoch 1:"):
            break
    time.sleep(moment)
    for _ in range(2):
        train.send_signal(signal.SIGINT)
        time.sleep(0.02)
    stdout, stderr = (stream.decode() for stream in train.communicate(timeout=300))
    assert train.returncode == 128 + signal.SIGINT, stderr
    stops = [x for x in stdout.splitlines() if x.startswith("stopped by SIGINT after step ")]  # the run's log
    assert stderr.splitlines() in ([], [ABORTED]) and len(stops) <= 1, stderr
    assert stops or stderr, stdout  # the first Ctrl-C's stop was said, or the second one aborted it

    again = subprocess.run(command, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["epoch"] for r in read_lines(the_folder(tmp_path) / "metrics.jsonl")] == list(range(1, 9))
