"""Loss landscapes along filter-normalised directions, and the LPF flatness."""

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONFIGS, compose_config, smoke_overrides
from lesam.analysis.batches import split_batches
from lesam.analysis.landscape import coordinates, filter_normalised_direction, landscape
from lesam.analysis.loaded_run import LoadedRun
from lesam.analysis.lpf import lpf
from lesam.engine.evaluation import loss_and_accuracy
from lesam.models import build_model


@pytest.fixture
def small_run(tmp_path):
    """A small CNN with BatchNorm (running statistics moved off their defaults) on synthetic data."""
    cfg = compose_config(smoke_overrides(tmp_path, "model=small_cnn", "model.width=4"))
    torch.manual_seed(0)
    model = build_model(cfg.model, 10, 3, 32)
    with torch.no_grad():
        model(torch.randn(32, 3, 32, 32) * 2 + 1)  # train mode: BatchNorm statistics move
    return LoadedRun(tmp_path, cfg, model.eval(), None, torch.device("cpu"))


def analysis_cfg(name: str, **values):
    cfg = OmegaConf.load(CONFIGS / "analysis" / f"{name}.yaml")
    cfg.merge_with({"batch_size": 16, "num_batches": 2} | values)
    return cfg


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_directions_are_filter_normalised_and_skip_biases_and_batchnorm(small_run):
    params = list(small_run.model.parameters())
    direction = filter_normalised_direction(params, torch.Generator().manual_seed(0))
    multi = [(d, p) for d, p in zip(direction, params, strict=True) if p.dim() > 1]
    assert len(multi) == 4  # two convolutions, two linear layers
    for d, p in multi:
        assert d.shape == p.shape and d.abs().sum() > 0
        for d_filter, w_filter in zip(d, p, strict=True):
            assert d_filter.norm().item() == pytest.approx(w_filter.norm().item(), rel=1e-5)
    for d, p in zip(direction, params, strict=True):
        if p.dim() <= 1:
            assert torch.count_nonzero(d) == 0


def test_surface_centre_is_the_models_loss(small_run):
    cfg = analysis_cfg("landscape", points_1d=5, points_2d=3)
    before = weights(small_run.model)
    result = landscape(cfg, small_run)
    loss, _ = loss_and_accuracy(small_run.model, split_batches(cfg, small_run.cfg.dataset, small_run.device))
    assert result["x"] == [-1.0, -0.5, 0.0, 0.5, 1.0] and result["grid"] == [-1.0, 0.0, 1.0]
    assert result["loss_1d"][2] == loss
    assert result["loss_2d"][1][1] == loss
    assert len(result["loss_2d"]) == 3 and all(len(row) == 3 for row in result["loss_2d"])
    assert len(set(result["loss_1d"])) == 5  # the points off the centre do move the loss
    assert all(torch.equal(a, b) for a, b in zip(before, small_run.model.parameters(), strict=True))


def test_coordinates_put_zero_in_the_middle():
    assert coordinates(0.7, 51)[25] == 0.0
    assert coordinates(2.0, 3) == [-2.0, 0.0, 2.0]


def test_lpf_with_sigma_zero_is_the_plain_loss(small_run):
    cfg = analysis_cfg("lpf", sigma=0.0, samples=3)
    result = lpf(cfg, small_run)
    loss, _ = loss_and_accuracy(small_run.model, split_batches(cfg, small_run.cfg.dataset, small_run.device))
    assert result["lpf"] == result["loss"] == loss
    assert result["lpf_std"] == 0.0


def test_lpf_noise_moves_the_loss_and_restores_the_weights(small_run):
    before = weights(small_run.model)
    result = lpf(analysis_cfg("lpf", sigma=0.5, samples=4), small_run)
    assert result["lpf"] != result["loss"] and result["lpf_std"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, small_run.model.parameters(), strict=True))
