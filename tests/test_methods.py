"""GLMC's mixtures and loss, ERM++'s linear probe and weight averaging, on tiny models; both resume exactly."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import compose_config, crash_after_first_checkpoint, smoke_overrides, without_hydra
from lesam.analysis.accuracy import accuracy
from lesam.analysis.loaded_run import load_run
from lesam.data import build_data
from lesam.engine.precision import autocast
from lesam.engine.run import run
from lesam.engine.trainer import Trainer
from lesam.methods import build_method
from lesam.methods.batch import Batch
from lesam.methods.glmc import PairedViews
from lesam.models import build_model

NO_AUTOCAST = autocast("fp32", torch.device("cpu"))


def glmc_setup(*extra):
    cfg = compose_config(
        ["dataset=synthetic", "dataset.image_size=8", "model=mlp", "model.hidden=[16]", "method=glmc", *extra]
    )
    data = build_data(cfg.dataset)
    method = build_method(cfg, data)
    torch.manual_seed(0)
    model = method.wrap(build_model(cfg.model, data.num_classes, data.channels, data.image_size))
    return cfg, data, method, model


def test_glmc_mixes_each_image_with_its_partner():
    _, data, method, _ = glmc_setup()
    images = torch.stack([torch.full((4, 3, 8, 8), float(v)) for v in range(6)]) + torch.arange(4.0).view(1, 4, 1, 1, 1)
    labels = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [1, 0]])
    torch.manual_seed(3)
    batch = method.batch(images, labels, epoch=0.0)
    lam = (batch.targets[0, 0]).item()
    assert 0 < lam < 1 and torch.allclose(batch.targets.sum(1), torch.ones(6))
    assert torch.allclose(batch.inputs, lam * images[:, 0] + (1 - lam) * images[:, 2])
    assert torch.allclose(batch.weighted_targets, batch.targets * method.class_weights)
    assert torch.equal(batch.labels, labels[:, 0] if lam >= 0.5 else labels[:, 1])
    # CutMix: each pixel is the image's second view or its partner's, about (1 - lam) of them the partner's
    from_partner = batch.cutmix == images[:, 3]
    assert torch.all(from_partner | (batch.cutmix == images[:, 1]))
    assert abs(from_partner.float().mean().item() - (1 - lam)) < 0.3


def test_glmc_loss_is_alpha_balanced_plus_rebalanced_plus_consistency():
    _, _, method, model = glmc_setup("method.contrast_weight=3")
    images, labels = torch.randn(5, 4, 3, 8, 8), torch.randint(0, 10, (5, 2))
    torch.manual_seed(1)
    batch = method.batch(images, labels, epoch=100.0)  # of 200 epochs: alpha = 1 - (100/200)^2
    assert method.alpha == pytest.approx(0.75)
    loss, logits = method.loss(model, batch, NO_AUTOCAST)

    mix, cut = model.forward_train(batch.inputs), model.forward_train(batch.cutmix)

    def ce(out, target):
        return -(target * out.log_softmax(1)).sum(1).mean()

    def cos(p, z):
        return -F.cosine_similarity(p, z, dim=1).mean()

    balanced = ce(mix.logits, batch.targets) + ce(cut.logits, batch.targets)
    rebalanced = ce(mix.rebalanced, batch.weighted_targets) + ce(cut.rebalanced, batch.weighted_targets)
    consistency = cos(mix.prediction, cut.projection) + cos(cut.prediction, mix.projection)
    assert loss.item() == pytest.approx((0.75 * balanced + 0.25 * rebalanced + 3 * consistency).item(), rel=1e-5)
    assert torch.equal(logits, model(batch.inputs))  # the tested head is the rebalanced one


def test_glmc_consistency_sends_no_gradient_through_its_target():
    from lesam.methods.glmc import negative_cosine

    prediction, target = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    negative_cosine(prediction, target).backward()
    assert target.grad is None and prediction.grad.abs().sum() > 0


@pytest.mark.parametrize("epoch,alpha", [(0.0, 1.0), (0.9, 1.0), (50.0, 1 - 0.25**2), (199.5, 1 - (199 / 200) ** 2)])
def test_glmc_alpha_moves_to_the_rebalanced_head_epoch_by_epoch(epoch, alpha):
    _, _, method, _ = glmc_setup()
    method.batch(torch.randn(2, 4, 3, 8, 8), torch.zeros(2, 2, dtype=torch.long), epoch)
    assert method.alpha == pytest.approx(alpha)


def test_glmc_partners_are_drawn_with_the_rebalanced_weights():
    _, data, _, _ = glmc_setup()
    weights = torch.zeros(len(data.train), dtype=torch.float64)
    weights[7] = 1.0
    paired = PairedViews(data.train, weights)
    views, labels = paired[3]
    assert views.shape == (4, 3, 8, 8)
    assert labels.tolist() == [int(data.train.labels[3]), int(data.train.labels[7])]


def test_averaged_copy_averages_the_parameters_and_has_batchnorm_statistics_of_its_own():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    method = build_method(compose_config(["method=ermpp", "method.average_start_step=2"]), None)
    method.wrap(model)
    params, expected = [], None
    for step in range(1, 6):
        inputs = torch.randn(8, 3)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(inputs)  # the online network's statistics move with its own passes
        params.append([p.clone() for p in model.parameters()])
        if expected is None:  # the copy is made after the first step: its statistics start as the network's
            expected = copy.deepcopy(model[1])
        method.after_step(step, Batch(inputs, torch.zeros(8, dtype=torch.long)))
        # then every batch goes through the copy itself: its first layer followed, then averaged (from step 2)
        kept = params[1:] if step >= 2 else params[-1:]
        first = torch.nn.Linear(3, 4)
        first.load_state_dict({"weight": mean_of(kept, 0), "bias": mean_of(kept, 1)})
        with torch.no_grad():
            expected.train()(first(inputs))
    average = method.eval_model(model)
    for i, p in enumerate(average.parameters()):  # from step 2 on: the mean of steps 2 to 5
        torch.testing.assert_close(p, mean_of(params[1:], i))
    torch.testing.assert_close(average[1].running_mean, expected.running_mean)
    torch.testing.assert_close(average[1].running_var, expected.running_var)
    assert not average.training  # tested in eval mode


def mean_of(snapshots: list[list[torch.Tensor]], index: int) -> torch.Tensor:
    """The mean over the snapshots of their tensor `index`."""
    return torch.stack([snapshot[index] for snapshot in snapshots]).mean(0)


def test_linear_probe_trains_the_classifier_alone(tmp_path):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=mlp", "model.hidden=[16]", "method=ermpp", "method.linear_probe_steps=3")
    )
    trainer = Trainer(without_hydra(cfg))
    phase = trainer.method.warm_start()
    assert phase.steps == 3 and phase.module is trainer.model.layers[3]  # ERM++ declares its probe
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._warm_start()  # the trainer runs it
    after = trainer.model.state_dict()
    assert torch.equal(after["layers.1.weight"], before["layers.1.weight"])  # the hidden layer: frozen
    assert not torch.equal(after["layers.3.weight"], before["layers.3.weight"])  # the classifier: trained
    assert all(p.requires_grad for p in trainer.model.parameters())
    assert not trainer.optimizer.state  # the run's own optimizer starts fresh, as in ERM++


@pytest.mark.parametrize("max_steps,probe_steps", [(None, 5), (2, 2), (9, 5)])
def test_max_steps_caps_the_linear_probe_too(tmp_path, max_steps, probe_steps):
    cfg = compose_config(
        smoke_overrides(
            tmp_path, "model=mlp", "model.hidden=[8]", "method=ermpp", "method.linear_probe_steps=5",
            f"trainer.max_steps={'null' if max_steps is None else max_steps}",
        )
    )  # fmt: skip
    trainer = Trainer(without_hydra(cfg))
    steps = []
    take_step = trainer._optimizer_step

    def counted_step(batch, optimizer=None):
        steps.append(optimizer)
        return take_step(batch, optimizer)

    trainer._optimizer_step = counted_step
    trainer._warm_start()
    assert len(steps) == probe_steps and trainer.optimizer not in steps  # the probe's own optimizer's steps


@pytest.mark.parametrize("optimizer", ["lesam", "msam"])  # MSAM also recomputes BatchNorm statistics at the end
def test_a_last_training_batch_of_one_image_crashes_no_phase(tmp_path, optimizer):
    cfg = compose_config(
        smoke_overrides(
            tmp_path, "model=small_cnn", "model.width=4", "method=ermpp", "method.linear_probe_steps=3",
            f"optimizer={optimizer}", "dataset.num_train=33", "dataset.image_size=2", "trainer.epochs=1",
        )
    )  # fmt: skip
    # 33 images in batches of 16: the 33rd, alone, would give BatchNorm one value per channel (2x2 pixels, one
    # stride-2 conv: 1x1) in the probe, in training and in MSAM's recomputation; it is left out
    final = run(cfg, folder=tmp_path / "run")
    assert final["steps"] == 2 and math.isfinite(final["train_loss"])


@pytest.mark.parametrize(
    "method",
    [
        ["method=glmc", "model=small_cnn", "model.width=4"],
        [
            "method=ermpp",
            "model=mlp",
            "model.hidden=[16]",
            "method.linear_probe_steps=2",
            "method.average_start_step=3",
        ],
    ],
)
def test_methods_resume_exactly_and_are_analysed_as_tested(method, tmp_path, monkeypatch):
    cfg = compose_config(smoke_overrides(tmp_path, *method, "optimizer=lesam", "trainer.epochs=2"))
    whole = run(cfg, folder=tmp_path / "whole")
    assert math.isfinite(whole["train_loss"]) and math.isfinite(whole["test_loss"])

    crash_after_first_checkpoint(cfg, tmp_path / "parts", monkeypatch)
    parts = run(cfg, folder=tmp_path / "parts")
    assert {k: v for k, v in whole.items() if k != "seconds"} == {k: v for k, v in parts.items() if k != "seconds"}

    loaded = load_run(tmp_path / "whole" / "last.pt", "cpu")
    analysed = accuracy(OmegaConf.create({"batch_size": 64, "workers": 0, "precision": "fp32"}), loaded)
    assert analysed["test_acc"] == pytest.approx(whole["test_acc"])
