"""Model registry: builds the network named by the Hydra `model` config node."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from omegaconf import DictConfig, OmegaConf
from torch import nn

from lesam.models.imagenet_nets import RESNETS, torchvision_resnet, vision_transformer, vit_layout
from lesam.models.preact_resnet import PreActResNet18
from lesam.models.pyramidnet import PyramidNet
from lesam.models.pyramidnet import depth_problem as pyramidnet_depth
from lesam.models.resnet import ResNet18
from lesam.models.resnet32 import ResNet32
from lesam.models.small import MLP, SmallCNN
from lesam.models.wide_resnet import WideResNet
from lesam.models.wide_resnet import depth_problem as wrn_depth

__all__ = ["build_model", "config_problem"]

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
    "resnet32": lambda cfg, classes, channels, size: ResNet32(classes, channels, width=cfg.width),
    "preact_resnet18": lambda cfg, classes, channels, size: PreActResNet18(classes, channels, width=cfg.width),
    **dict.fromkeys(RESNETS, torchvision_resnet),
    "vit_b16": vision_transformer,
}


def build_model(
    cfg: DictConfig,
    num_classes: int,
    in_channels: int,
    image_size: int,
    pretrained: bool = True,
    like: Mapping[str, object] | None = None,
) -> nn.Module:
    """Build the model `cfg.name` for square images of `in_channels` x `image_size`^2 pixels.

    `pretrained=False` skips reading the file `cfg.weights` names (for weights loaded afterwards); `like`, the
    state_dict to be loaded, then picks the layout of a model that has two (ViT: torchvision's or timm's).
    """
    builder = _BUILDERS.get(cfg.name)
    if builder is None:
        raise ValueError(f"unknown model '{cfg.name}'; choose one of: {', '.join(_BUILDERS)}")
    if not pretrained and cfg.get("weights"):
        cfg = OmegaConf.merge(cfg, {"weights": None})
    if builder is vision_transformer and like is not None:
        return vision_transformer(cfg, num_classes, in_channels, image_size, layout=vit_layout(like))
    return builder(cfg, num_classes, in_channels, image_size)


def config_problem(cfg: DictConfig) -> str | None:
    """Why the model `cfg` describes cannot be built, as `key=value must ...`; None if it can."""
    depth = cfg.get("depth")
    if cfg.name == "wrn28_10":
        problem = wrn_depth(depth)
    elif cfg.name == "pyramidnet110":
        problem = pyramidnet_depth(depth, cfg.bottleneck)
    else:
        return None
    return f"model.depth={depth} {problem}" if problem else None
