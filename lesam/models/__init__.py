"""Model registry: builds the network named by the Hydra `model` config node."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from lesam.models.pyramidnet import PyramidNet
from lesam.models.resnet import ResNet18
from lesam.models.small import MLP, SmallCNN
from lesam.models.wide_resnet import WideResNet

__all__ = ["build_model"]

# Each builder takes (cfg, num_classes, in_channels, image_size) and reads its own config keys.
Builder = Callable[[DictConfig, int, int, int], nn.Module]

_BUILDERS: dict[str, Builder] = {
    "resnet18": lambda cfg, classes, channels, size: ResNet18(classes, channels, width=cfg.width),
    "wrn28_10": lambda cfg, classes, channels, size: WideResNet(
        classes, channels, depth=cfg.depth, widen_factor=cfg.widen_factor, dropout=cfg.dropout
    ),
    "pyramidnet110": lambda cfg, classes, channels, size: PyramidNet(
        classes, channels, depth=cfg.depth, alpha=cfg.alpha, bottleneck=cfg.bottleneck
    ),
    "small_cnn": lambda cfg, classes, channels, size: SmallCNN(classes, channels, width=cfg.width),
    "mlp": lambda cfg, classes, channels, size: MLP(
        classes, in_features=channels * size * size, hidden=list(cfg.hidden)
    ),
}


def build_model(cfg: DictConfig, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Build the model `cfg.name` for square images of `in_channels` x `image_size`^2 pixels."""
    builder = _BUILDERS.get(cfg.name)
    if builder is None:
        raise ValueError(f"unknown model '{cfg.name}'; choose one of: {', '.join(_BUILDERS)}")
    return builder(cfg, num_classes, in_channels, image_size)
