"""Small networks for tests and CPU demos: a two-layer CNN and a BatchNorm-free MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lesam.models.init import init_conv_bn

# Two stride-2 convs take a 28x28 image to 7x7; pooling to that size fixes the head for any input.
POOLED_SIZE = 7


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A stride-2 3x3 conv, BatchNorm and ReLU: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Two strided conv-BN-ReLU blocks (width, 2 * width channels) and a two-layer head (4 * width hidden)."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        # Strided convs instead of conv + max-pool: same downsampling, a quarter of the work.
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width),
            conv_bn_relu(width, 2 * width),
            nn.AdaptiveAvgPool2d(POOLED_SIZE),
            nn.Flatten(),
        )
        # The hidden layer buys about two points after one Fashion-MNIST epoch for little time.
        self.head = nn.Sequential(
            nn.Linear(2 * width * POOLED_SIZE**2, 4 * width),
            nn.ReLU(inplace=True),
            nn.Linear(4 * width, num_classes),
        )
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images."""
        return self.head(self.features(x))


class MLP(nn.Module):
    """Flatten, then Linear-ReLU hidden layers and a linear head; no BatchNorm or dropout."""

    def __init__(self, num_classes: int, in_features: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for out_features in hidden:
            layers += [nn.Linear(width, out_features), nn.ReLU()]
            width = out_features
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images (or any tensor with `in_features` values per sample)."""
        return self.layers(x)
