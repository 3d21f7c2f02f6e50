"""Synthetic images for tests, smoke runs and benchmarks: deterministic, learnable, no files.

Besides a plain balanced set, it stands in for the structured settings: `imbalance_factor` makes the
training split long-tailed (as CIFAR-100-LT) and `source_domain` adds shifted test domains (as PACS
and VLCS), so their runs and reports work end to end without the real data.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torchvision import transforms

from lesam.core.errors import UserError
from lesam.data.datasets import DataSplits
from lesam.data.long_tail import long_tail_counts
from lesam.data.tensor_dataset import ImageTensorDataset

SHIFTED_DOMAINS = 3  # test domains beside the source, each with its own offset of the patterns


def synthetic(cfg: DictConfig) -> DataSplits:
    """Noisy copies of one random pattern per class (plus a domain's offset), as uint8 images."""
    generator = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.channels, cfg.image_size, cfg.image_size)
    patterns = torch.randn((cfg.num_classes, *shape), generator=generator)
    mean, std = (0.5,) * cfg.channels, (0.25,) * cfg.channels

    def split(labels: torch.Tensor, shift: float = 0.0, augment=None) -> ImageTensorDataset:
        noisy = patterns[labels] + shift + torch.randn((len(labels), *shape), generator=generator)
        images = (noisy * 40 + 128).clamp(0, 255).to(torch.uint8)
        return ImageTensorDataset(images, labels, mean, std, augment)

    counts = None
    if cfg.get("imbalance_factor"):
        counts = long_tail_counts(cfg.num_classes, cfg.num_train // cfg.num_classes, cfg.imbalance_factor)
        train_labels = torch.repeat_interleave(torch.arange(cfg.num_classes), torch.tensor(counts))
    else:
        train_labels = torch.randint(cfg.num_classes, (cfg.num_train,), generator=generator)
    train = split(train_labels, augment=_augmentation(cfg))
    test = split(torch.randint(cfg.num_classes, (cfg.num_test,), generator=generator))
    domains = None
    if cfg.get("source_domain"):
        labels = [torch.randint(cfg.num_classes, (cfg.num_test,), generator=generator) for _ in range(SHIFTED_DOMAINS)]
        domains = {f"shifted{i + 1}": split(y, shift=0.5 * (i + 1)) for i, y in enumerate(labels)}
    return DataSplits(train, test, cfg.num_classes, cfg.channels, cfg.image_size, mean, std, counts, domains)


PADDING = {"basic": "constant", "reflect": "reflect"}  # CIFAR's recipes: random crop with 4 pixels of padding, flip


def _augmentation(cfg: DictConfig) -> transforms.Compose | None:
    """CIFAR's crop-and-flip recipe on tensors (zero or reflected padding), or none."""
    if cfg.augment == "none":
        return None
    if cfg.augment not in PADDING:
        raise UserError(
            f"unknown dataset.augment '{cfg.augment}' for synthetic data; choose one of: none, basic, reflect"
        )
    crop = transforms.RandomCrop(cfg.image_size, padding=4, padding_mode=PADDING[cfg.augment])
    return transforms.Compose([crop, transforms.RandomHorizontalFlip()])
