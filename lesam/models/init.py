"""Weight initialisation shared by the CIFAR models."""

from __future__ import annotations

from torch import nn


def init_conv_bn(model: nn.Module) -> None:
    """Kaiming-normal convolutions and identity BatchNorm, the init of the reference CIFAR code."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def init_kaiming_fan_in(model: nn.Module) -> None:
    """Kaiming-normal (fan_in, gain sqrt 2) weights of every convolution and linear layer; biases as they are."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight)
