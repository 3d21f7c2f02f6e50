"""Model registry and architectures: shapes, gradients, published sizes, init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lesam.models import build_model

MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
NAMES = ["resnet18", "wrn28_10", "pyramidnet110", "small_cnn", "mlp"]
NUM_CLASSES = 7

TINY = {
    "resnet18": {"name": "resnet18", "width": 4},
    "wrn28_10": {"name": "wrn28_10", "depth": 10, "widen_factor": 1, "dropout": 0.3},
    "pyramidnet110": {"name": "pyramidnet110", "depth": 8, "alpha": 12, "bottleneck": False},
    "pyramidnet_bottleneck": {"name": "pyramidnet110", "depth": 11, "alpha": 12, "bottleneck": True},
    "small_cnn": {"name": "small_cnn", "width": 4},
    "mlp": {"name": "mlp", "hidden": [16, 8]},
}

# Parameters for 10 classes: ResNet-18 (CIFAR stem) 11.17M, WRN-28-10 36.5M (Zagoruyko &
# Komodakis 2016), basic-block PyramidNet-110 alpha 270 28.49M (28,485,477 in the pytorchcv zoo).
PUBLISHED_PARAMS = {"resnet18": 11.17e6, "wrn28_10": 36.5e6, "pyramidnet110": 28.49e6}


def load_config(name: str) -> DictConfig:
    """The shipped config for `name`."""
    return OmegaConf.load(MODEL_CONFIGS / f"{name}.yaml")


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("variant", sorted(TINY))
@pytest.mark.parametrize("channels, size", [(3, 32), (1, 28)])
def test_tiny_model_gives_logits_and_gradients(variant: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(OmegaConf.create(TINY[variant]), NUM_CLASSES, channels, size)
    images = torch.randn(4, channels, size, size)

    logits = model(images)
    assert logits.shape == (4, NUM_CLASSES)
    assert torch.isfinite(logits).all()

    nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(param.grad).all(), f"non-finite gradient for {name}"
    assert any(param.grad.abs().sum() > 0 for param in model.parameters())

    model.eval()
    with torch.no_grad():
        assert model(images[:1]).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_config_is_named_after_its_file_and_builds(name: str) -> None:
    cfg = load_config(name)
    assert cfg.name == name
    with torch.device("meta"):  # no memory or init cost: only the structure is checked
        model = build_model(cfg, 10, 3, 32)
    assert count_params(model) > 0


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_full_size_parameter_count_matches_published(name: str) -> None:
    with torch.device("meta"):
        model = build_model(load_config(name), 10, 3, 32)
    assert count_params(model) == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01)


def test_pyramidnet_widens_linearly_to_stem_plus_alpha() -> None:
    with torch.device("meta"):
        model = build_model(load_config("pyramidnet110"), 10, 3, 32)
    convs = [m for m in model.blocks.modules() if isinstance(m, nn.Conv2d)]
    widths = [conv.out_channels for conv in convs[1::2]]  # second conv of each basic block
    assert len(widths) == 54
    assert widths == [16 + 5 * (i + 1) for i in range(54)]


def test_mlp_has_no_batchnorm() -> None:
    model = build_model(load_config("mlp"), 10, 1, 28)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_conv_and_batchnorm_init_follow_the_reference() -> None:
    torch.manual_seed(0)
    model = build_model(OmegaConf.create({"name": "resnet18", "width": 16}), 10, 3, 32)
    conv = model.stages[6].residual[0]  # large, and fan_out != fan_in, so the mode shows
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.05)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))


@pytest.mark.parametrize("bad", [{"name": "wrn28_10", "depth": 27}, {"name": "pyramidnet110", "depth": 11}])
def test_invalid_depth_raises(bad: dict) -> None:
    cfg = OmegaConf.merge(load_config(bad["name"]), bad)
    with pytest.raises(ValueError, match="depth"):
        build_model(cfg, 10, 3, 32)


def test_unknown_model_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown model 'vgg16'") as error:
        build_model(OmegaConf.create({"name": "vgg16"}), 10, 3, 32)
    for name in NAMES:
        assert name in str(error.value)
