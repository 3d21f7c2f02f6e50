"""`make status`: where each run of a table stands, read from real tiny run folders without disturbing them,
and the GPU-hours left."""

import json
import os
import socket
import sys

import pytest
import torch
from test_preemption import signal_after_step

from conftest import compose_config, crash_after_first_checkpoint, run_command
from lesam.core.errors import UserError
from lesam.core.files import WriteFailed
from lesam.core.folder_lock import FolderInUse, FolderLock
from lesam.core.run_folder import RunFolder
from lesam.engine.preemption import Interrupted
from lesam.engine.run import run
from lesam.report.plan import Run, RunState, composer
from lesam.report.spec import Table
from lesam.report.status import (
    DIVERGED,
    DONE,
    FAILED,
    NOT_STARTED,
    RUNNING,
    STOPPED,
    Progress,
    hours_left,
    lines,
    read_progress,
    report,
    standing,
    summary,
    table_standings,
)
from lesam.report.tables import grid

# 64 synthetic images in batches of 16: 4 steps an epoch, 3 epochs
TINY = ("debug=smoke", "model=mlp", "model.hidden=[8]", "dataset.num_train=64", "trainer.epochs=3")


def six_seeds(root) -> Table:
    """One cell of tiny runs, six seeds: one for each state a run can be in."""
    return Table(
        "tiny", "tiny runs", (grid("Tiny", {"mlp": TINY}, {"SGD": ("optimizer=sgd",)}),), seeds=tuple(range(6))
    )


class Killed(BaseException):
    """Stands for kill -9: the process ends, and nothing of it sees an error to report."""


def snapshot(folder):
    """Every file of `folder` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_every_state_a_run_can_be_in(tmp_path, monkeypatch):
    t = six_seeds(tmp_path)
    args = {seed: (*TINY, "optimizer=sgd", f"seed={seed}", f"output_root={tmp_path}") for seed in range(6)}
    with composer() as c:
        folder = {seed: c.folder(a) for seed, a in args.items()}
    cfg = {seed: compose_config(list(a)) for seed, a in args.items()}
    run(cfg[0], folder=folder[0])  # done
    run(cfg[1], folder=folder[1])  # diverged, as its final.json says
    final = RunFolder(folder[1]).read_final() | {"status": "diverged"}
    RunFolder(folder[1]).final.write_text(json.dumps(final))
    crash_after_first_checkpoint(cfg[2], folder[2], monkeypatch, Killed)  # after epoch 1; a process will hold it
    signal_after_step(monkeypatch, 6)  # stopped halfway through epoch 2
    with pytest.raises(Interrupted):
        run(cfg[3], folder=folder[3])
    monkeypatch.undo()
    save, saves = RunFolder.save_checkpoint, []

    def full_disk_at_the_second_epoch(self, state):
        saves.append(state)
        if len(saves) == 2:
            raise WriteFailed(self.checkpoint, OSError(28, "No space left on device"))
        save(self, state)

    monkeypatch.setattr(RunFolder, "save_checkpoint", full_disk_at_the_second_epoch)
    with pytest.raises(UserError, match="No space left on device"):
        run(cfg[4], folder=folder[4])
    monkeypatch.undo()  # seed 5: not started

    holder = FolderLock(folder[2])  # held as a running process holds it (another open file: flock tells them apart)
    holder.take()
    try:
        before = {seed: snapshot(f) for seed, f in folder.items() if f.exists()}
        with composer() as c:
            standings = table_standings(t, c, extra=(f"output_root={tmp_path}",))
        assert {seed: snapshot(f) for seed, f in folder.items() if f.exists()} == before  # nothing written
        with pytest.raises(FolderInUse):  # the holder still holds it
            FolderLock(folder[2]).take()
    finally:
        holder.release()

    host = socket.gethostname()
    assert [(s.state, s.folder, s.detail) for s in standings] == [
        (DONE, folder[0], ""),
        (DIVERGED, folder[1], ""),
        (RUNNING, folder[2], f"process {os.getpid()} on {host}; after epoch 1 of 3 (step 4)"),
        (STOPPED, folder[3], "in epoch 2 of 3, step 6"),
        (
            FAILED,
            folder[4],
            f"after epoch 1 of 3 (step 4); error: could not write {folder[4]}/last.pt: No space left on device",
        ),
        (NOT_STARTED, folder[5], ""),
    ]
    for seed in (2, 3, 4):  # two epochs left, at the seconds the first one took, on one process
        first = torch.load(folder[seed] / "last.pt", weights_only=True)["seconds"]
        assert standings[seed].hours_left == pytest.approx(2 * first / 3600)
    assert standings[5].hours_left is None  # synthetic data: no time in the paper
    assert summary("tiny", standings) == (
        "tiny: 6 runs: 1 done, 1 diverged, 1 running, 1 stopped, 1 failed, 1 not started; "
        f"about {sum(s.hours_left for s in standings[2:5]):.1f} GPU-hours left, 1 run not estimated"
    )
    assert lines(standings)[3] == f"stopped      {folder[3]}  in epoch 2 of 3, step 6"
    with composer() as c:  # its holder gone, the folder is a stopped run
        assert table_standings(t, c, extra=(f"output_root={tmp_path}",))[2].state == STOPPED


def test_a_non_finite_result_is_a_diverged_run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "final.json").write_text('{"test_acc": NaN, "test_loss": NaN}')  # as runs wrote before they said so
    cfg = compose_config(["debug=smoke"])
    assert standing(RunState(Run((), 0), folder, {}, folder), cfg).state == DIVERGED


def test_time_left_is_the_runs_own_time_per_epoch_times_what_is_left_on_each_process(compose_cfg):
    cfg = compose_cfg(["debug=smoke", "trainer.epochs=10"])
    two_gpus = Progress(epoch=2, step=8, seconds=720.0, interrupted=None, processes=2)
    assert hours_left(two_gpus, cfg) == pytest.approx(8 * 360 * 2 / 3600)
    steps = compose_cfg(["debug=smoke", "trainer.steps=100"])
    stopped = Progress(epoch=1, step=25, seconds=40.0, interrupted=10.0, processes=1)  # 2 s a step
    assert hours_left(stopped, steps) == pytest.approx(75 * 2 / 3600)


def test_before_its_first_epoch_a_run_counts_the_tables_estimate(compose_cfg):
    cfg = compose_cfg(["experiment=cifar100_resnet18", "optimizer=lesam"])
    # the paper's Table 6: LE-SAM with ResNet-18, 9.32 s an epoch on one RTX 5090; 200 epochs
    assert hours_left(None, cfg) == pytest.approx(9.32 * 200 / 3600)
    assert hours_left(Progress(0, 300, 50.0, 50.0, 1), cfg) == pytest.approx(9.32 * 200 / 3600)


def test_read_progress_of_a_folder_without_a_checkpoint(tmp_path):
    assert read_progress(tmp_path) is None


def test_make_status_lists_a_tables_runs(tmp_path):
    result = run_command([sys.executable, "scripts/status.py", "table7", "--seeds", "0", f"output_root={tmp_path}"])
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == 7 and all(line.startswith(f"not started  {tmp_path}/cifar100_lt-resnet32-") for line in out[:6])
    assert out[6] == (
        "table7: 6 runs: 0 done, 0 diverged, 0 running, 0 stopped, 0 failed, 6 not started; "
        "GPU-hours left not estimated (no time in the paper, none measured yet)"
    )
    with pytest.raises(UserError, match="unknown table 'table9'; choose one of: table1, "):
        report("table9")
