"""Non-finite losses: the step is skipped and counted, BatchNorm keeps its statistics, a stream stops the run."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, compose_config, smoke_overrides
from lesam.core.run_folder import RunFolder
from lesam.engine.guards import NonFiniteSteps, StepGuard
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


def test_a_stream_of_non_finite_losses_stops_the_run_naming_the_steps(tmp_path, monkeypatch):
    cfg = compose_config(
        smoke_overrides(
            tmp_path,
            "model=mlp",
            *TINY["mlp"],
            "optimizer=lesam",
            "trainer.epochs=4",
            "trainer.nonfinite_window=4",
        )
    )  # 4 steps an epoch: epoch 1 is clean, every step from 6 on has a NaN loss
    inject_loss(monkeypatch, set(range(6, 100)), math.nan)
    with pytest.raises(NonFiniteSteps, match="steps 9 to 12 all had a non-finite loss or gradient"):
        run(cfg, folder=tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    assert [m["epoch"] for m in folder.read_metrics()] == [1, 2]  # what was written stays
    assert torch.load(folder.checkpoint, weights_only=True)["trainer"]["epoch"] == 2


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
