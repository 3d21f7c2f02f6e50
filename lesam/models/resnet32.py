"""ResNet-32 for CIFAR (He et al. 2016, section 4.2), the backbone of the CIFAR-LT literature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lesam.models.resnet import CifarResNet


class ShortcutA(nn.Module):
    """He et al.'s option A: subsample by the stride and pad the new channels with zeros (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, (out_channels - in_channels) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every `stride`-th pixel, zero channels on both sides."""
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))


class ResNet32(CifarResNet):
    """Three stages of five blocks (width, 2 width, 4 width channels) with option-A shortcuts.

    He et al. use width 16; GLMC's code builds its "ResNet-32" with width 64.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16) -> None:
        super().__init__(num_classes, in_channels, width, stages=3, blocks_per_stage=5, shortcut=ShortcutA)
