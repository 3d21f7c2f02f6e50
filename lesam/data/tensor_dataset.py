"""Images held in memory as one uint8 tensor, with labels and an optional augmentation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset


class ImageTensorDataset(Dataset):
    """(N, C, H, W) uint8 images and (N,) labels; items are normalised float images."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.images, self.labels, self.augment = images, labels.long(), augment
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index].float().div_(255)
        if self.augment is not None:
            image = self.augment(image)
        return (image - self.mean) / self.std, self.labels[index]
