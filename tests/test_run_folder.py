"""A run folder holds exactly what its checkpoint holds, belongs to one process, and survives a failed write."""

import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import torch
from faulty_train import FullDisk

from conftest import ROOT, TINY, Crash, compose_config, smoke_overrides
from lesam.core.errors import UserError
from lesam.core.folder_lock import FolderInUse
from lesam.core.run_folder import RunFolder, append_line, read_lines
from lesam.engine.run import run
from lesam.engine.trainer import Trainer

TIMING = {"seconds", "train_seconds", "images_per_s"}


def tiny(tmp_path, *extra: str):
    return compose_config(
        smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=lesam", "trainer.rho_every=1", *extra)
    )


def written(folder: RunFolder) -> tuple:
    """metrics.jsonl (timings aside) and rho.jsonl as they are on disk."""
    metrics = [{k: v for k, v in r.items() if k not in TIMING} for r in read_lines(folder.metrics)]
    return metrics, folder.rho.read_text()


def crash_in_first_epoch_save(monkeypatch, cut_off_line: bool) -> None:
    """End the run as a crash would when epoch 1's lines are written and its checkpoint is not (with half
    of an extra line, as a crash in the middle of an append leaves)."""

    def crash(self, state):
        if cut_off_line:
            with open(self.metrics, "a") as f:
                f.write('{"epoch": 2, "train_lo')
        raise Crash

    monkeypatch.setattr(RunFolder, "save_checkpoint", crash)


@pytest.mark.parametrize("cut_off_line", [False, True])
def test_a_run_that_dies_before_its_first_checkpoint_starts_its_lines_over(cut_off_line, tmp_path, monkeypatch):
    cfg = tiny(tmp_path, "trainer.epochs=3")
    run(cfg, folder=tmp_path / "whole")
    with monkeypatch.context() as patch:
        crash_in_first_epoch_save(patch, cut_off_line)
        with pytest.raises(Crash):
            run(cfg, folder=tmp_path / "parts")
    parts = RunFolder(tmp_path / "parts")
    assert [r["epoch"] for r in read_lines(parts.metrics)] == [1] and not parts.checkpoint.exists()
    run(cfg, folder=parts.path)
    assert written(parts) == written(RunFolder(tmp_path / "whole"))
    assert [r["epoch"] for r in read_lines(parts.metrics)] == [1, 2, 3]


def test_an_append_drops_a_cut_off_line_instead_of_gluing_onto_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2, "train_lo')
    append_line(path, {"epoch": 2})
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


def test_a_second_process_on_the_folder_is_refused_with_one_line(tmp_path):
    cfg = tiny(tmp_path, "trainer.epochs=1")
    holder = RunFolder(tmp_path / "run")
    holder.check_writable()
    holder.lock()
    try:
        with pytest.raises(FolderInUse) as refused:
            run(cfg, folder=holder.path)
        assert str(refused.value) == (
            f"the run folder '{holder.path}' is in use by process {os.getpid()} on {socket.gethostname()}; "
            "wait for that run to end (or stop it) before starting it again"
        )
        assert sorted(p.name for p in holder.path.iterdir()) == [".lock"]  # the holder's folder is left alone
    finally:
        holder.unlock()
    assert run(cfg, folder=holder.path)["epochs"] == 1  # let go: the next run takes it


HOLD = """
import sys
from pathlib import Path
from lesam.core.folder_lock import FolderLock
FolderLock(Path(sys.argv[1])).take()
print("holding", flush=True)
sys.stdin.read()  # until the test closes it
"""


def test_deleting_the_lock_file_lets_no_second_process_onto_the_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.check_writable()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder.path)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"holding\n"
        (folder.path / ".lock").unlink()
        with pytest.raises(FolderInUse) as refused:
            folder.lock()
        assert str(refused.value) == (
            f"the run folder '{folder.path}' is in use by another process; wait for that run to end "
            "(or stop it) before starting it again"
        )
    finally:
        holder.communicate(timeout=60)
    folder.lock()  # its holder has ended: the folder is free
    folder.unlock()


def test_the_lock_ends_with_its_process_not_with_the_workers_it_forked(tmp_path):
    """kill -9 of a run leaves its data loader workers alive for a few seconds: they must not hold the folder."""
    holder = RunFolder(tmp_path / "run")
    holder.check_writable()
    holder.lock()
    started, ready = os.pipe()
    worker = os.fork()
    if worker == 0:  # the forked worker lives on, as one does after its parent is killed
        os.write(ready, b"1")  # past fork(): what the fork did in this process is done
        time.sleep(60)
        os._exit(0)
    os.read(started, 1)
    try:
        holder.unlock()  # what the end of the process does to its own descriptor
        RunFolder(holder.path).lock()
    finally:
        os.kill(worker, signal.SIGKILL)
        os.waitpid(worker, 0)
        os.close(started)
        os.close(ready)


def test_a_file_system_without_locks_gets_a_warning_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert run(tiny(tmp_path, "trainer.epochs=1"), folder=tmp_path / "run")["epochs"] == 1
    assert f"cannot lock {tmp_path / 'run'} (No locks available)" in caplog.text


def test_a_finished_run_is_skipped_while_another_process_holds_the_folder(tmp_path):
    cfg = tiny(tmp_path, "trainer.epochs=1")
    final = run(cfg, folder=tmp_path / "run")
    holder = RunFolder(tmp_path / "run")
    holder.lock()
    try:
        assert run(cfg, folder=holder.path) == final
    finally:
        holder.unlock()


@pytest.mark.parametrize("before", ["no folder", "a lock file alone"])  # the second: left by a run killed at start
@pytest.mark.parametrize(
    "failing",
    [
        (RunFolder, "load_checkpoint"),  # after the lock is taken
        (Trainer, "train_epoch"),  # in the first epoch, after .hydra/ and train.log are written
    ],
    ids=["at its start", "in its first epoch"],
)
def test_a_new_run_that_fails_leaves_no_folder_though_it_held_the_lock(before, failing, tmp_path, monkeypatch):
    cfg = tiny(tmp_path, "trainer.epochs=1")
    if before == "a lock file alone":
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / ".lock").write_text("4242 elsewhere\n")

    def crash(self):
        raise Crash

    monkeypatch.setattr(*failing, crash)
    with pytest.raises(Crash):
        run(cfg, folder=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_files_follow_the_umask_and_leftover_temporary_files_are_removed(tmp_path):
    folder = RunFolder(tmp_path / "run")
    (folder.path / ".hydra").mkdir(parents=True)
    leftovers = [folder.path / ".last.pt.k1ll3d.tmp", folder.path / ".hydra" / ".config.yaml.k1ll3d.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    umask = os.umask(0o002)  # a shared project folder: the group may read and write
    try:
        run(tiny(tmp_path, "trainer.epochs=1"), folder=folder.path)
    finally:
        os.umask(umask)
    assert not any(path.exists() for path in leftovers)
    modes = {p.relative_to(folder.path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.path.rglob("*")}
    files = {name: mode for name, mode in modes.items() if name != ".hydra"}
    assert {"last.pt", "final.json", "metrics.jsonl", ".hydra/config.yaml", ".lock"} <= files.keys()
    assert files == dict.fromkeys(files, 0o664)


@pytest.mark.parametrize("failing", [1, 2])
def test_a_full_disk_ends_the_run_with_one_line_and_keeps_the_checkpoint(failing, tmp_path, monkeypatch):
    """The disk fills up while the n-th checkpoint is written; the same command then finishes the run."""
    cfg = tiny(tmp_path, "trainer.epochs=3")
    folder = RunFolder(tmp_path / "run")
    save, calls = torch.save, [0]

    def save_on_a_full_disk(obj, f):
        calls[0] += 1
        return save(obj, f if calls[0] < failing else FullDisk(f, 1000))  # torch raises its own error

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", save_on_a_full_disk)
        with pytest.raises(UserError) as error:
            run(cfg, folder=folder.path)
    kept = "the previous checkpoint is kept" if failing > 1 else "no checkpoint was written yet"
    assert str(error.value) == f"could not write {folder.checkpoint}: No space left on device; {kept}"
    assert not any(folder.path.glob(".*.tmp"))
    if failing > 1:
        assert torch.load(folder.checkpoint, weights_only=True)["trainer"]["epoch"] == failing - 1
    run(cfg, folder=folder.path)
    assert [r["epoch"] for r in read_lines(folder.metrics)] == [1, 2, 3]


DAMAGE = {"garbled": '{"epoch": 2, "train_lo\x00\x00ss": 0.1}\n', "blank": "\n", "missing": ""}


@pytest.mark.parametrize("name,damage", [("metrics", "garbled"), ("metrics", "blank"), ("rho", "missing")])
def test_a_damaged_line_the_checkpoint_vouches_for_is_written_again_from_it(name, damage, tmp_path, caplog):
    cfg = tiny(tmp_path, "trainer.epochs=3")
    folder = RunFolder(tmp_path / "run")
    final = run(cfg, folder=folder.path)
    whole = folder.metrics.read_text(), folder.rho.read_text()
    path = getattr(folder, name)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], DAMAGE[damage], *lines[2:]]))  # epoch 2's line
    folder.final.unlink()  # final.json is written again from last.pt, which holds all three epochs
    caplog.clear()  # the first run's own warnings
    with caplog.at_level(logging.WARNING, logger="lesam"):
        assert run(cfg, folder=folder.path) == final
    assert (folder.metrics.read_text(), folder.rho.read_text()) == whole
    note = f"{name}.jsonl: the lines of epochs 2 were damaged or missing; wrote them again from last.pt"
    assert caplog.messages == [note]


def test_a_damaged_line_that_a_checkpoint_without_copies_cannot_mend_is_named(tmp_path, caplog):
    """A checkpoint of an older version holds no copy of the lines: the damaged one is left out, with a word."""
    cfg = tiny(tmp_path, "trainer.epochs=3")
    folder = RunFolder(tmp_path / "run")
    run(cfg, folder=folder.path)
    older = torch.load(folder.checkpoint, weights_only=True)
    del older["lines"]
    torch.save(older, folder.checkpoint)
    lines = folder.metrics.read_text().splitlines(keepends=True)
    folder.metrics.write_text("".join([lines[0], DAMAGE["garbled"], *lines[2:]]))
    folder.final.unlink()
    caplog.clear()  # the first run's own warnings
    with caplog.at_level(logging.WARNING, logger="lesam"):
        run(cfg, folder=folder.path)
    assert folder.metrics.read_text() == lines[0] + lines[2]
    assert caplog.messages == [
        "metrics.jsonl: left out its damaged lines 2; last.pt (written by an older version) holds no copy of them"
    ]
