"""What a run logs for the figures: per-step radii (rho.jsonl), LPF during training, the switch to SAM."""

import json

import pytest
import torch

from conftest import compose_config, smoke_overrides
from lesam.core import run_folder
from lesam.core.errors import UserError
from lesam.engine.run import run

TIMING = {"seconds", "train_seconds", "images_per_s"}
MLP = ("model=mlp", "model.hidden=[16]")  # 64 training images in batches of 16: 4 steps per epoch


def tiny(tmp_path, *extra):
    return compose_config(smoke_overrides(tmp_path, *MLP, *extra))


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_rho_of_every_step_matches_the_epoch_statistics(tmp_path):
    run(tiny(tmp_path, "optimizer=lesam", "trainer.epochs=2", "trainer.rho_every=1"), folder=tmp_path / "r")
    traces, metrics = lines(tmp_path / "r" / "rho.jsonl"), lines(tmp_path / "r" / "metrics.jsonl")
    assert [t["epoch"] for t in traces] == [1, 2]
    assert [t["step"] for t in traces] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    for trace, epoch in zip(traces, metrics, strict=True):
        assert min(trace["rho"]) == epoch["rho_min"] and max(trace["rho"]) == epoch["rho_max"]
        assert sum(trace["rho"]) / 4 == pytest.approx(epoch["rho_mean"], rel=1e-12)


def test_rho_stride_counts_global_steps_and_sgd_keeps_none(tmp_path):
    run(tiny(tmp_path, "optimizer=sam", "trainer.epochs=2", "trainer.rho_every=3"), folder=tmp_path / "sam")
    traces = lines(tmp_path / "sam" / "rho.jsonl")
    assert [t["step"] for t in traces] == [[0, 3], [6]]
    assert all(r == pytest.approx(0.05) for t in traces for r in t["rho"])  # SAM's fixed radius
    run(tiny(tmp_path, "optimizer=sgd", "trainer.epochs=1"), folder=tmp_path / "sgd")
    assert not (tmp_path / "sgd" / "rho.jsonl").exists()


def test_lpf_logging_leaves_training_unchanged(tmp_path):
    plain = run(tiny(tmp_path, "optimizer=lesam", "trainer.epochs=3"), folder=tmp_path / "plain")
    logged = run(
        tiny(tmp_path, "optimizer=lesam", "trainer.epochs=3", "trainer.lpf.every=2", "trainer.lpf.batches=2"),
        folder=tmp_path / "logged",
    )
    metrics = lines(tmp_path / "logged" / "metrics.jsonl")
    assert ["lpf" in m for m in metrics] == [False, True, True]  # every 2 epochs, and after the last
    assert all(m["lpf"] > 0 and m["lpf_std"] >= 0 for m in metrics[1:])
    a = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)["trainer"]["model"]
    b = torch.load(tmp_path / "logged" / "last.pt", weights_only=True)["trainer"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain["test_acc"] == logged["test_acc"]


class Stop(Exception):
    pass


def test_resume_keeps_rho_and_lpf_lines_of_checkpointed_epochs_only(tmp_path, monkeypatch):
    cfg = tiny(tmp_path, "optimizer=lesam", "trainer.epochs=3", "trainer.rho_every=2", "trainer.lpf.every=1")
    run(cfg, folder=tmp_path / "whole")

    save, calls = run_folder.RunFolder.save_checkpoint, []

    def crash_before_the_second_checkpoint(self, state):
        calls.append(1)
        if len(calls) == 2:  # epoch 2's lines are written, its checkpoint is not
            raise Stop
        save(self, state)

    monkeypatch.setattr(run_folder.RunFolder, "save_checkpoint", crash_before_the_second_checkpoint)
    with pytest.raises(Stop):
        run(cfg, folder=tmp_path / "parts")
    assert [t["epoch"] for t in lines(tmp_path / "parts" / "rho.jsonl")] == [1, 2]
    monkeypatch.setattr(run_folder.RunFolder, "save_checkpoint", save)
    run(cfg, folder=tmp_path / "parts")
    assert lines(tmp_path / "parts" / "rho.jsonl") == lines(tmp_path / "whole" / "rho.jsonl")
    assert untimed(lines(tmp_path / "parts" / "metrics.jsonl")) == untimed(lines(tmp_path / "whole" / "metrics.jsonl"))


@pytest.mark.parametrize("optimizer", ["sam", "lesam"])
def test_switch_trains_as_sgd_until_start_epoch_then_perturbs(optimizer, tmp_path):
    """Figure 6's SGD -> SAM / LE-SAM: the first epoch is exactly SGD's, the second perturbs."""
    run(tiny(tmp_path, "optimizer=sgd", "trainer.epochs=2"), folder=tmp_path / "sgd")
    switched = tiny(tmp_path, f"optimizer={optimizer}", "trainer.epochs=2", "optimizer.start_epoch=1")
    switched.trainer.rho_every = 1
    run(switched, folder=tmp_path / "switch")
    sgd, switch = lines(tmp_path / "sgd" / "metrics.jsonl"), lines(tmp_path / "switch" / "metrics.jsonl")
    same = ("train_loss", "train_acc", "test_loss", "test_acc")
    assert [sgd[0][k] for k in same] == [switch[0][k] for k in same]
    assert "rho_mean" not in switch[0] and switch[1]["rho_mean"] > 0
    assert [t["step"] for t in lines(tmp_path / "switch" / "rho.jsonl")] == [[4, 5, 6, 7]]


def test_bad_logging_values_are_user_errors(tmp_path):
    for override in ("trainer.rho_every=-1", "trainer.lpf.every=1.5", "trainer.lpf.samples=0"):
        with pytest.raises(UserError, match=override.split("=")[0]):
            run(tiny(tmp_path, override), folder=tmp_path / "bad")
        assert not (tmp_path / "bad").exists()
