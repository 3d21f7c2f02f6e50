"""A table's GPU-hours: from a benchmark JSON's measured epoch times where given, else from the paper's."""

import json

import pytest

from lesam.report.cost import EpochTimes, cost_note, epoch_times, gpu_hours
from lesam.report.plan import composer, runs
from lesam.report.tables import TABLES

PAPER = {("resnet18", "sam"): 9.06, ("resnet18", "lesam"): 9.32, ("wrn28_10", "sam"): 55.83}  # Table 6
EPOCHS = {"resnet18": 200, "wrn28_10": 200, "pyramidnet110": 300}  # appendix F


def bench_json(tmp_path, records):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"records": records}))
    return path


def record(model, optimizer, path, seconds):
    return {"model": model, "optimizer": optimizer, "path": path, "s_per_epoch": seconds}


def test_measured_times_prefer_the_default_path_then_the_fastest(tmp_path):
    times = EpochTimes.measured(
        bench_json(
            tmp_path,
            [
                record("resnet18", "sam", "default", 3.0),
                record("resnet18", "sam", "gpu+graph", 2.0),  # faster, but not what a run takes by default
                record("resnet18", "lesam", "gpu", 9.0),
                record("resnet18", "lesam", "gpu+graph", 2.5),  # no default: the fastest
            ],
        )
    )
    assert times.seconds("resnet18", "sam")[0] == 3.0
    assert times.seconds("resnet18", "lesam")[0] == 2.5
    assert times.seconds("resnet18", "esam")[0] == 3.0  # another two-pass method: SAM's time
    assert times.seconds("resnet18", "sgd")[0] == 1.5  # one pass, not timed: half of SAM's
    seconds, source = times.seconds("wrn28_10", "sam")  # not benchmarked: the paper's
    assert seconds == PAPER["wrn28_10", "sam"] and "paper" in source


def test_a_table_costs_its_runs_epochs_at_the_measured_times(tmp_path):
    table = TABLES["table4"]  # CIFAR-100 x ResNet-18, WRN-28-10, PyramidNet-110 x SAM, LE-SAM, LE-SAM+
    path = bench_json(tmp_path, [record("resnet18", o, "default", t) for o, t in (("sam", 2.0), ("lesam", 3.0))])
    planned = runs(table)
    with composer() as c:
        models = [c.compose((*r.overrides, *r.extra)) for r in planned]
        expected = 0.0
        for cfg in models:
            name, optimizer = cfg.model.name, cfg.optimizer.name
            if name == "resnet18":
                seconds = 2.0 if optimizer == "sam" else 3.0  # LE-SAM+ at LE-SAM's time
            else:
                seconds = EpochTimes.paper().seconds(name, optimizer)[0]
            expected += seconds * EPOCHS[name]
        hours = gpu_hours(planned, c, epoch_times(path))
        note = cost_note(planned, c, epoch_times(path))
    assert hours == pytest.approx(expected / 3600)
    resnet18 = sum(cfg.model.name == "resnet18" for cfg in models)
    assert f"{resnet18} runs from measured epoch times ({path})" in note and "from the paper's" in note


def test_without_a_benchmark_the_paper_times_are_used_and_named():
    planned = runs(TABLES["table4"])
    with composer() as c:
        note = cost_note(planned, c, epoch_times(None))
        assert gpu_hours(planned, c) == gpu_hours(planned, c, EpochTimes.paper())
    assert note.endswith("(from the paper's Table 6 times (one RTX 5090))")
