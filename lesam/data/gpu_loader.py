"""A loader that keeps a small image data set on the GPU as uint8 and augments whole batches there.

The CIFAR recipe (random crop with 4 pixels of zero padding, horizontal flip, normalisation,
optionally Cutout) is applied per sample with batched tensor ops, so an epoch costs a few kernel
launches per batch instead of a Python call per image (the approach of airbench).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class GpuLoader:
    """Batches of (normalised images, labels) from uint8 images held on `device`.

    Each epoch's order and augmentation come from `generator`, so reseeding it repeats an epoch.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        crop_padding: int = 0,
        flip: bool = False,
        cutout: int = 0,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
    ) -> None:
        self.images = (
            torch.nn.functional.pad(images.to(device), (crop_padding,) * 4) if crop_padding else images.to(device)
        )
        self.labels = labels.to(device).long()
        self.size = images.shape[-1]
        self.mean = torch.tensor(mean, device=device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.batch_size, self.device, self.shuffle = batch_size, device, shuffle
        self.crop_padding, self.flip, self.cutout = crop_padding, flip, cutout
        self.dtype, self.channels_last = dtype, channels_last
        self.generator = torch.Generator(device=device)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start : start + self.batch_size]
            yield self.augment(self.images[index]), self.labels[index]

    def augment(self, batch: Tensor) -> Tensor:
        """Crop, flip, normalise and cut out a uint8 batch, each sample with its own random draw."""
        if self.crop_padding:
            batch = random_crop(batch, self.size, self.generator)
        if self.flip:
            flipped = torch.rand(len(batch), device=self.device, generator=self.generator) < 0.5
            batch = torch.where(flipped.view(-1, 1, 1, 1), batch.flip(3), batch)
        batch = (batch.float() - self.mean) / self.std
        if self.cutout:
            batch = cutout(batch, self.cutout, self.generator)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch.to(self.dtype)


def random_crop(padded: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A size x size window of each padded image, at an offset drawn uniformly per sample."""
    n, slack = len(padded), padded.shape[-1] - size
    dy = torch.randint(slack + 1, (n, 1), device=padded.device, generator=generator)
    dx = torch.randint(slack + 1, (n, 1), device=padded.device, generator=generator)
    span = torch.arange(size, device=padded.device)
    rows, cols = (dy + span)[:, :, None], (dx + span)[:, None, :]
    sample = torch.arange(n, device=padded.device)[:, None, None]
    return padded[sample, :, rows, cols].permute(0, 3, 1, 2)  # indexing puts channels last


def cutout(batch: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zero a size x size square centred at a uniform pixel of each image (clipped at the border)."""
    n, height, width = len(batch), batch.shape[-2], batch.shape[-1]
    y = torch.randint(height, (n, 1, 1), device=batch.device, generator=generator)
    x = torch.randint(width, (n, 1, 1), device=batch.device, generator=generator)
    ys = torch.arange(height, device=batch.device).view(1, -1, 1)
    xs = torch.arange(width, device=batch.device).view(1, 1, -1)
    half = size // 2
    inside = (ys >= y - half) & (ys < y + half) & (xs >= x - half) & (xs < x + half)
    return batch.masked_fill(inside[:, None], 0)
