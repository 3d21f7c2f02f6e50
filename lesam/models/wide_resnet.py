"""Wide ResNet (Zagoruyko & Komodakis, 2016) for CIFAR, WRN-28-10 by default."""

from __future__ import annotations

import torch
from torch import nn

from lesam.models.init import init_conv_bn

STAGE_STRIDES = (1, 2, 2)


class WideBlock(nn.Module):
    """Pre-activation wide basic block: BN-ReLU-conv-BN-ReLU-dropout-conv plus shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.preact = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        self.projection: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch on the pre-activated input, plus the shortcut."""
        out = self.preact(x)
        # As in the reference WRN, a projection shortcut reads the pre-activated input.
        shortcut = x if self.projection is None else self.projection(out)
        return self.residual(out) + shortcut


def depth_problem(depth: int) -> str | None:
    """Why a WRN cannot have `depth` layers, or None: each of its 3 stages has n blocks of 2 layers."""
    if isinstance(depth, int) and depth >= 10 and (depth - 4) % 6 == 0:
        return None
    return "must be 4 + 6n with n >= 1 (28 for WRN-28-10)"


class WideResNet(nn.Module):
    """WRN-depth-k: a 16-channel stem and three stages of 16k, 32k and 64k channels."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        depth: int = 28,
        widen_factor: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if problem := depth_problem(depth):
            raise ValueError(f"WideResNet depth={depth} {problem}")
        blocks_per_stage = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks = []
        channels = 16
        for index, stride in enumerate(STAGE_STRIDES):
            out_channels = 16 * widen_factor * 2**index
            for block in range(blocks_per_stage):
                block_stride = stride if block == 0 else 1
                blocks.append(WideBlock(channels, out_channels, block_stride, dropout))
                channels = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, num_classes),
        )
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images."""
        return self.head(self.stages(self.stem(x)))
