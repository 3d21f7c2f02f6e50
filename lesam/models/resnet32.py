"""ResNet-32 for CIFAR (He et al. 2016, section 4.2), the backbone of the CIFAR-LT literature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lesam.models.init import init_conv_bn
from lesam.models.resnet import BasicBlock

BLOCKS_PER_STAGE = 5  # 6 * 5 + 2 = 32 layers


class ShortcutA(nn.Module):
    """He et al.'s option A: subsample by the stride and pad the new channels with zeros (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, (out_channels - in_channels) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every `stride`-th pixel, zero channels on both sides."""
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))


class ResNet32(nn.Module):
    """A 3x3 stem, three stages of five blocks (width, 2 width, 4 width channels), pooling, a linear head.

    He et al. use width 16; GLMC's code builds its "ResNet-32" with width 64.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        blocks, channels = [], width
        for stage in range(3):
            out_channels = width * 2**stage
            for index in range(BLOCKS_PER_STAGE):
                blocks.append(BasicBlock(channels, out_channels, 2 if stage and not index else 1, ShortcutA))
                channels = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images."""
        return self.head(self.stages(self.stem(x)))
