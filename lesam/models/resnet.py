"""ResNet-18 with the CIFAR stem, as used throughout the SAM literature on CIFAR."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lesam.models.init import init_conv_bn


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut where a block changes shape: a strided 1x1 convolution and BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class BasicBlock(nn.Module):
    """Post-activation residual block: conv-BN-ReLU-conv-BN, add the shortcut, ReLU.

    `shortcut(in_channels, out_channels, stride)` builds the shortcut where the block changes shape.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, shortcut: Callable[..., nn.Module] = projection
    ) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        changes = stride != 1 or in_channels != out_channels
        self.shortcut = shortcut(in_channels, out_channels, stride) if changes else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus shortcut, then ReLU."""
        return self.relu(self.residual(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """A 3x3 stride-1 stem (no max-pool: 32x32 inputs keep full resolution), stages of basic blocks that
    double the width and halve the resolution after the first, average pooling, a linear head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        width: int,
        stages: int,
        blocks_per_stage: int,
        shortcut: Callable[..., nn.Module] = projection,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        blocks, channels = [], width
        for stage in range(stages):
            out_channels = width * 2**stage
            for index in range(blocks_per_stage):
                stride = 2 if stage and not index else 1
                blocks.append(BasicBlock(channels, out_channels, stride, shortcut))
                channels = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images."""
        return self.head(self.stages(self.stem(x)))


class ResNet18(CifarResNet):
    """ResNet-18 for small images, as used throughout the SAM literature: four stages of two blocks."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64) -> None:
        super().__init__(num_classes, in_channels, width, stages=4, blocks_per_stage=2)
