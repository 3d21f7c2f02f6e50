"""Launching a table's runs: one Hydra multirun per cell family, one run per GPU pinned to it,
analyses after training, finished work never launched again."""

import json
import threading
import time

import pytest
from hydra import compose

from lesam.core.errors import UserError
from lesam.report import launch
from lesam.report.plan import FINISHED, composer, locate, runs
from lesam.report.smoke import SMOKE
from lesam.report.spec import Analysis, Table
from lesam.report.tables import grid, table

ACCURACY = Analysis("accuracy", ("analysis=accuracy",))


def toy_table():
    """Two optimizers on synthetic data with a tiny MLP, each run's checkpoint analysed."""
    block = grid(
        "Toy", {"mlp": ("dataset=synthetic", "model=mlp")}, {"SGD": ("optimizer=sgd",), "SAM": ("optimizer=sam",)}
    )
    return Table("toy", "A toy table", (block,), seeds=(0, 1, 2), analyses=(ACCURACY,))


class FakeRunner:
    """Records each command with its GPU and the time it ran; fails the commands it is told to."""

    def __init__(self, fail=()):
        self.calls, self.lock, self.fail = [], threading.Lock(), fail

    def __call__(self, argv, env):
        start = time.perf_counter()
        time.sleep(0.02)
        with self.lock:
            self.calls.append((env.get("CUDA_VISIBLE_DEVICES"), argv, start, time.perf_counter()))
        return 1 if any(f in argv for f in self.fail) else 0


def test_per_gpu_runs_one_run_per_gpu_then_its_analyses(tmp_path):
    t = toy_table()
    planned = runs(t, extra=lambda _: (f"output_root={tmp_path}",))
    runner = FakeRunner(fail=("seed=2",))
    with composer() as c:
        done, trained = planned[0], planned[1]  # finished and analysed; finished, analysis pending
        for run, files in ((done, ("final.json", "accuracy.json")), (trained, ("final.json",))):
            c.folder(run.args).mkdir(parents=True)
            for name in files:
                (c.folder(run.args) / name).write_text("{}")
        failed = launch.per_gpu(planned, c, ["0", "1"], t.analyses, runner)
        run_of = {f"checkpoint={c.folder(r.args) / 'last.pt'}": r for r in planned}
    gpus = {gpu for gpu, *_ in runner.calls}
    assert gpus == {"0", "1"}
    for gpu in gpus:  # never two runs at once on one GPU
        spans = sorted((s, e) for g, _, s, e in runner.calls if g == gpu)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))
    trains = [tuple(argv[2:]) for _, argv, *_ in runner.calls if argv[1] == "train.py"]
    assert sorted(trains) == sorted(r.args for r in planned[2:])  # the finished ones are not trained again
    analysed = [run_of[argv[-1]] for _, argv, *_ in runner.calls if argv[1] == "analyze.py"]
    assert sorted(analysed, key=str) == sorted([trained, *(r for r in planned[2:] if r.seed != 2)], key=str)
    for gpu, argv, start, _ in runner.calls:  # an analysis follows its run's training, on the same GPU
        run = run_of.get(argv[-1])
        if run is not None and run != trained:
            assert any(g == gpu and tuple(a[2:]) == run.args and end <= start for g, a, _, end in runner.calls)
    assert len(failed) == 2 and all("seed=2" in f and f.startswith("CUDA_VISIBLE_DEVICES=") for f in failed)


@pytest.mark.slow  # 16 s: real multiruns
def test_sequential_launch_is_one_multirun_per_family_and_skips_finished_runs(tmp_path):
    planned = [
        r
        for r in runs(
            table("table4"),
            seeds=(0,),
            extra=lambda _: (*SMOKE, "model.width=4", f"output_root={tmp_path}"),
        )
        if r.overrides[0] == "experiment=cifar100_resnet18"
    ]
    assert launch.sequential(planned) == []
    with composer() as c:
        states = locate(planned, c)
        assert [s.status for s in states] == [FINISHED] * 3
        stamps = {s.folder: (s.folder / "final.json").stat().st_mtime_ns for s in states}
        assert launch.sequential(planned) == []  # again: every run is finished, nothing is trained
        assert stamps == {f: (f / "final.json").stat().st_mtime_ns for f in stamps}
        assert launch.analyses(planned[:1], c, [ACCURACY]) == []
        result = json.loads((states[0].folder / "accuracy.json").read_text())
        assert result["analysis"]["name"] == "accuracy"
        runner = FakeRunner()
        assert launch.analyses(planned[:1], c, [ACCURACY], runner) == [] and runner.calls == []  # done already


def test_failed_multiruns_are_reported():
    planned = runs(table("table4"), seeds=(0,))
    failed = launch.sequential(planned, runner=FakeRunner(fail=("experiment=cifar100_wrn28_10",)))
    assert len(failed) == 1 and "train.py -m experiment=cifar100_wrn28_10 optimizer=sam,lesam,lesam_plus" in failed[0]


def test_unknown_launcher_is_one_clear_error():
    with pytest.raises(UserError, match="unknown launcher 'nowhere'; choose one of: .*slurm, slurm_cpu"):
        launch.sequential(runs(table("table4")), launcher="nowhere", runner=FakeRunner())


def test_slurm_launcher_composes():
    override = launch.launcher_override("slurm")
    assert override == "hydra/launcher=slurm"
    runner = FakeRunner()
    launch.sequential(runs(table("table4"), seeds=(0,)), launcher="slurm", runner=runner)
    assert all(argv[-1] == override for _, argv, *_ in runner.calls)
    with composer():
        cfg = compose("config", overrides=["experiment=cifar100_resnet18", override], return_hydra_config=True)
    assert "submitit" in cfg.hydra.launcher._target_
