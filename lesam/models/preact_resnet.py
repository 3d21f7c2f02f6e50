"""PreActResNet-18 (He et al., ECCV 2016) with the CIFAR stem, the backbone of the robustness literature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv; a 1x1 conv of the activated input is the shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.projection = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activated residual branch plus the (projected) shortcut."""
        activated = F.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(activated)
        return self.conv2(F.relu(self.bn2(self.conv1(activated)))) + shortcut


class PreActResNet18(nn.Module):
    """3x3 stride-1 stem, four stages of two pre-activation blocks, BN-ReLU, pooling, a linear head."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        blocks, channels = [], width
        for index, stride in enumerate(STAGE_STRIDES):
            out_channels = width * 2**index
            for block in range(BLOCKS_PER_STAGE):
                blocks.append(PreActBlock(channels, out_channels, stride if block == 0 else 1))
                channels = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images."""
        return self.head(self.stages(self.stem(x)))
