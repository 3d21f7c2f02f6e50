"""Cutout (DeVries & Taylor 2017): zero one random square of a normalised image tensor."""

from __future__ import annotations

import torch
from torch import Tensor


class Cutout:
    """Zero a size x size square centred at a uniform pixel (clipped at the border), as the ESAM code."""

    def __init__(self, size: int = 16) -> None:
        self.size = size

    def __call__(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        y, x = int(torch.randint(height, ())), int(torch.randint(width, ()))
        half = self.size // 2
        image = image.clone()
        image[..., max(y - half, 0) : y + half, max(x - half, 0) : x + half] = 0
        return image
