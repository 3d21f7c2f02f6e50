"""PyramidNet (Han, Kim & Kim, "Deep Pyramidal Residual Networks", CVPR 2017) for CIFAR.

The SAM literature's "PyramidNet-110" is the basic-block network with alpha = 270
(28.5M parameters): the ESAM code (github.com/dydjw9/Efficient_SAM, utils/options.py)
builds it as the authors' PyramidNet with depth 110, alpha 270 and bottleneck=False.
Channels grow by alpha / (number of blocks) at every block; shortcuts are identities,
average-pooled where the block strides and zero-padded to the new channel count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lesam.models.init import init_conv_bn

STEM_CHANNELS = 16
BOTTLENECK_EXPANSION = 4


def basic_residual(in_channels: int, planes: int, stride: int) -> nn.Sequential:
    """BN-conv3x3-BN-ReLU-conv3x3-BN, with `planes` output channels."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, planes, 3, padding=1, bias=False),
        nn.BatchNorm2d(planes),
    )


def bottleneck_residual(in_channels: int, planes: int, stride: int) -> nn.Sequential:
    """BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, with 4 * `planes` output channels."""
    out_channels = planes * BOTTLENECK_EXPANSION
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.Conv2d(in_channels, planes, 1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class PyramidBlock(nn.Module):
    """A residual branch plus a parameter-free, zero-padded identity shortcut."""

    def __init__(self, residual: nn.Sequential, stride: int) -> None:
        super().__init__()
        self.residual = residual
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus the pooled, zero-padded input."""
        out = self.residual(x)
        shortcut = x
        if self.stride != 1:
            # ceil_mode matches the strided conv's output size on odd inputs too.
            shortcut = F.avg_pool2d(shortcut, 2, ceil_mode=True)
        missing_channels = out.shape[1] - shortcut.shape[1]
        return out + F.pad(shortcut, (0, 0, 0, 0, 0, missing_channels))


def layers_per_block(bottleneck: bool) -> int:
    """Convolutions in one residual block."""
    return 3 if bottleneck else 2


def depth_problem(depth: int, bottleneck: bool) -> str | None:
    """Why a PyramidNet cannot have `depth` layers, or None: each of its 3 stages has n blocks."""
    per_stage = 3 * layers_per_block(bottleneck)
    if isinstance(depth, int) and depth >= 2 + per_stage and (depth - 2) % per_stage == 0:
        return None
    return f"must be 2 + {per_stage}n with n >= 1 when bottleneck={str(bottleneck).lower()} (110 for PyramidNet-110)"


class PyramidNet(nn.Module):
    """PyramidNet for small images: three stages whose width grows linearly from 16 by alpha."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        depth: int = 110,
        alpha: int = 270,
        bottleneck: bool = False,
    ) -> None:
        super().__init__()
        if problem := depth_problem(depth, bottleneck):
            raise ValueError(f"PyramidNet depth={depth} {problem}")
        blocks_per_stage = (depth - 2) // (3 * layers_per_block(bottleneck))
        make_residual = bottleneck_residual if bottleneck else basic_residual
        expansion = BOTTLENECK_EXPANSION if bottleneck else 1
        num_blocks = 3 * blocks_per_stage

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, STEM_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
        )
        blocks = []
        channels = STEM_CHANNELS
        for index in range(num_blocks):
            planes = round(STEM_CHANNELS + alpha * (index + 1) / num_blocks)
            stride = 2 if index > 0 and index % blocks_per_stage == 0 else 1
            blocks.append(PyramidBlock(make_residual(channels, planes, stride), stride))
            channels = planes * expansion
        self.blocks = nn.Sequential(*blocks)
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
        return self.head(self.blocks(self.stem(x)))
