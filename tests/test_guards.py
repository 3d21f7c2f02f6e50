"""Non-finite losses: the step is skipped and counted, BatchNorm keeps its statistics, a stream stops the run."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import (
    QUICK_RUN,
    TINY,
    compose_config,
    crash_after_first_checkpoint,
    error_line,
    run_command,
    smoke_overrides,
)
from lesam.core.run_folder import RunFolder
from lesam.engine.guards import Diverged, NonFiniteSteps, StepGuard, divergence
from lesam.engine.run import run
from lesam.engine.trainer import Trainer
from lesam.methods.closure import backward_seed
from lesam.optim import LESAM


def inject_loss(monkeypatch, bad_steps: set[int], value: float) -> None:
    """Add `value` to the training loss of the given steps (1-based); their gradient stays finite."""
    cross_entropy, steps = F.cross_entropy, {"taken": 0}
    monkeypatch.setattr(StepGuard, "before", _counting(StepGuard.before, steps))

    def poisoned(*args, **kwargs):
        loss = cross_entropy(*args, **kwargs)
        training = torch.is_grad_enabled() and steps["taken"] in bad_steps
        return loss + value if training else loss

    monkeypatch.setattr(F, "cross_entropy", poisoned)


def _counting(before, steps):
    def counted(self):
        steps["taken"] += 1
        before(self)

    return counted


@pytest.mark.parametrize("optimizer", ["sgd", "lesam"])
def test_a_non_finite_loss_is_skipped_and_counted(optimizer, tmp_path, monkeypatch):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=small_cnn", *TINY["small_cnn"], f"optimizer={optimizer}", "trainer.epochs=2")
    )
    states, after = [], StepGuard.after  # states[i]: the weights after step i + 1

    def recording(self, step):
        after(self, step)
        states.append([p.detach().clone() for group in self.optimizer.param_groups for p in group["params"]])

    monkeypatch.setattr(StepGuard, "after", recording)
    inject_loss(monkeypatch, {3}, math.inf)  # an infinite loss whose gradient is finite: only the loss check sees it
    final = run(cfg, folder=tmp_path / "run")
    metrics = RunFolder(tmp_path / "run").read_metrics()
    assert [m["skipped_steps"] for m in metrics] == [1, 1] and final["skipped_steps"] == 1
    assert all(torch.equal(a, b) for a, b in zip(states[1], states[2], strict=True)), "step 3 changed the weights"
    assert not all(torch.equal(a, b) for a, b in zip(states[2], states[3], strict=True)), "step 4 did not"


def test_skipped_steps_are_counted_on_across_a_resume(tmp_path, monkeypatch):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=2"))
    inject_loss(monkeypatch, {2}, math.inf)
    run(cfg, folder=tmp_path / "whole")
    inject_loss(monkeypatch, {2}, math.inf)  # counted from the first step again
    crash_after_first_checkpoint(cfg, tmp_path / "parts", monkeypatch)
    monkeypatch.undo()  # the resumed run's steps are all finite
    run(cfg, folder=tmp_path / "parts")
    skipped = [[m["skipped_steps"] for m in RunFolder(tmp_path / name).read_metrics()] for name in ("whole", "parts")]
    assert skipped == [[1, 1], [1, 1]]


def test_a_nan_forward_leaves_batchnorm_statistics_finite(tmp_path, monkeypatch):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=small_cnn", *TINY["small_cnn"], "optimizer=lesam", "trainer.epochs=1")
    )
    to_device, calls = Trainer._to_device, {"n": 0}

    def nan_batch(self, inputs, labels):
        calls["n"] += 1
        inputs, labels = to_device(self, inputs, labels)
        return (inputs * math.nan if calls["n"] == 2 else inputs), labels

    monkeypatch.setattr(Trainer, "_to_device", nan_batch)
    final = run(cfg, folder=tmp_path / "run")
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]["model"]
    statistics = {k: v for k, v in state.items() if "running_" in k}
    assert statistics and all(torch.isfinite(v).all() for v in statistics.values())
    assert final["skipped_steps"] == 1 and math.isfinite(final["test_loss"])


@pytest.mark.parametrize(
    "bad,steps,epochs",
    [
        (set(range(3, 100)), "3 to 6", [1]),  # the stream starts inside a window of checks
        ({3, 4, 5} | set(range(7, 100)), "7 to 10", [1, 2]),  # the finite step 6 starts the count again
    ],
)
def test_consecutive_non_finite_losses_stop_the_run_naming_the_steps(bad, steps, epochs, tmp_path, monkeypatch):
    cfg = compose_config(
        smoke_overrides(
            tmp_path,
            "model=mlp",
            *TINY["mlp"],
            "optimizer=lesam",
            "trainer.epochs=4",
            "trainer.nonfinite_window=4",
        )
    )  # 4 steps an epoch
    inject_loss(monkeypatch, bad, math.nan)
    with pytest.raises(NonFiniteSteps, match=f"steps {steps} all had a non-finite loss or gradient"):
        run(cfg, folder=tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    assert [m["epoch"] for m in folder.read_metrics()] == epochs  # what was written stays
    assert torch.load(folder.checkpoint, weights_only=True)["trainer"]["epoch"] == epochs[-1]


def test_backward_seed_is_one_or_nan():
    assert backward_seed(torch.tensor(2.5)).item() == 1.0
    assert all(math.isnan(backward_seed(torch.tensor(v)).item()) for v in (math.inf, -math.inf, math.nan))


def test_lesam_radius_stays_finite_when_the_gradient_vanishes():
    w = torch.nn.Parameter(torch.ones(3))
    opt = LESAM([w], torch.optim.SGD, delta=0.35, rho_max=None, lr=0.1)
    for scale in (0.0, 1e-30, 1e-12):
        opt.zero_grad()
        (w * scale).sum().backward()
        opt.first_step()
        assert math.isfinite(opt.last_rho.item()) and torch.isfinite(w).all(), scale
        (w * scale).sum().backward()
        opt.second_step()
        assert torch.isfinite(w).all(), scale


def test_a_run_that_ends_diverged_says_so_in_one_line_and_in_final_json(tmp_path):
    """lr=1e6 for 4 steps, fewer than trainer.nonfinite_window: the test loss ends nan; no result to average."""
    overrides = [*QUICK_RUN, "trainer.epochs=2", "optimizer.lr=1e6", f"output_root={tmp_path}"]
    first = run_command([sys.executable, "train.py", *overrides])
    (folder,) = tmp_path.iterdir()
    final = RunFolder(folder).read_final()
    assert (final["status"], final["reason"]) == ("diverged", "its test loss is nan")
    assert RunFolder(folder).is_diverged()
    line = (
        f"the run diverged (its test loss is nan); {folder / 'final.json'} says so, and tables leave the run out; "
        "lower optimizer.lr, or check the data"
    )
    assert error_line(first) == f"error: {line}"
    with pytest.raises(Diverged) as again:  # the same run again: finished, and still diverged
        run(compose_config(overrides), folder=folder)
    assert str(again.value) == line


def test_weights_that_are_not_finite_count_as_diverged():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    assert divergence(model, 0.5) is None
    assert divergence(model, math.inf) == "its test loss is inf"
    model[1].running_var[0] = math.nan
    assert divergence(model, math.nan) == "its test loss is nan and its weights are not finite"
