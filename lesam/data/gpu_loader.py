"""A loader that keeps a small image data set on the GPU as uint8 and augments whole batches there.

The CIFAR recipe (random crop with 4 pixels of zero padding, horizontal flip, normalisation,
optionally Cutout) is applied per sample with batched tensor ops, so an epoch costs a few kernel
launches per batch instead of a Python call per image (the approach of airbench). Every random
draw of an epoch is made when the epoch starts, from a generator seeded by the epoch alone: an
epoch resumed halfway gives its remaining batches exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from lesam.data.sampling import mixed_seed, trained_samples
from lesam.data.tensor_dataset import ImageTensorDataset


@dataclass(frozen=True)
class Augmentation:
    """What the loader does to a training image: crop padding (0 = no crop), flip, Cutout size (0 = none)."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0


# dataset.augment -> the same recipe on the GPU (the torchvision pipeline's distribution, tested)
AUGMENTATIONS = {"none": Augmentation(), "basic": Augmentation(4, True), "cutout": Augmentation(4, True, 16)}


def image_arrays(dataset: Dataset) -> tuple[Tensor, Tensor] | None:
    """A data set's images as one (N, C, H, W) uint8 tensor and its labels, or None if it has no such arrays."""
    if isinstance(dataset, Subset):
        arrays = image_arrays(dataset.dataset)
        index = torch.as_tensor(dataset.indices)
        return None if arrays is None else (arrays[0][index], arrays[1][index])
    if isinstance(dataset, ImageTensorDataset):
        return dataset.images, dataset.labels
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 4 and targets is not None:
        return torch.from_numpy(data).permute(0, 3, 1, 2), torch.as_tensor(targets)  # torchvision's CIFAR: NHWC
    return None


class GpuLoader:
    """Batches of (normalised images, labels) from uint8 images held on `device`."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        augmentation: Augmentation = AUGMENTATIONS["none"],
        seed: int = 0,
    ) -> None:
        pad = augmentation.crop_padding
        self.images = torch.nn.functional.pad(images.to(device), (pad,) * 4) if pad else images.to(device)
        self.labels = labels.to(device).long()
        self.size = images.shape[-1]
        self.mean = torch.tensor(mean, device=device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.batch_size, self.device, self.shuffle = batch_size, device, shuffle
        self.augmentation, self.seed = augmentation, seed
        self.generator = torch.Generator(device=device)
        self.set_epoch(0)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Draw epoch `epoch`'s order and augmentation; leave out its first `skip_batches` batches."""
        self.generator.manual_seed(mixed_seed(self.seed, epoch) % 2**63)
        self.skip = skip_batches

    def __len__(self) -> int:
        return -(-self._batched() // self.batch_size)

    def _batched(self) -> int:
        """How many images an epoch's batches hold: a shuffled (training) loader leaves out a last batch of one."""
        n = len(self.labels)
        return trained_samples(n, self.batch_size) if self.shuffle else n

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n, a = len(self.labels), self.augmentation
        order = torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle else None
        offsets = self._draw(n, 2, a.crop_padding * 2 + 1) if a.crop_padding else None
        flips = self._draw(n, 1, 2).bool().view(-1) if a.flip else None
        centres = self._draw(n, 2, self.size) if a.cutout else None
        for start in range(self.skip * self.batch_size, self._batched(), self.batch_size):
            part = slice(start, start + self.batch_size)
            index = part if order is None else order[part]
            batch = self.images[index]
            if offsets is not None:
                batch = random_crop(batch, self.size, offsets[part])
            if flips is not None:
                batch = torch.where(flips[part].view(-1, 1, 1, 1), batch.flip(3), batch)
            batch = (batch.float() - self.mean) / self.std
            if centres is not None:
                batch = cutout(batch, a.cutout, centres[part])
            yield batch, self.labels[index]

    def _draw(self, n: int, columns: int, high: int) -> Tensor:
        """n x columns integers uniform in [0, high), from the epoch's generator."""
        return torch.randint(high, (n, columns), device=self.device, generator=self.generator)


def random_crop(padded: Tensor, size: int, offsets: Tensor) -> Tensor:
    """The size x size window of each padded image at its (row, column) offset."""
    span = torch.arange(size, device=padded.device)
    rows, cols = (offsets[:, :1] + span)[:, :, None], (offsets[:, 1:] + span)[:, None, :]
    sample = torch.arange(len(padded), device=padded.device)[:, None, None]
    return padded[sample, :, rows, cols].permute(0, 3, 1, 2)  # the indexing puts channels last


def cutout(batch: Tensor, size: int, centres: Tensor) -> Tensor:
    """Zero the size x size square around each image's (row, column) centre, clipped at the border."""
    height, width = batch.shape[-2:]
    y, x = centres[:, 0].view(-1, 1, 1), centres[:, 1].view(-1, 1, 1)
    ys = torch.arange(height, device=batch.device).view(1, -1, 1)
    xs = torch.arange(width, device=batch.device).view(1, 1, -1)
    half = size // 2
    inside = (ys >= y - half) & (ys < y + half) & (xs >= x - half) & (xs < x + half)
    return batch.masked_fill(inside[:, None], 0)
