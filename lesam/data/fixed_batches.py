"""Fixed batches to measure a loss on: a seeded subset of a split, unaugmented, held on the device."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from lesam.core.errors import UserError
from lesam.data.datasets import build_data

SPLITS = ("train", "test")
Batches = list[tuple[Tensor, Tensor]]


def unaugmented_split(dataset_cfg: DictConfig, split: str) -> Dataset:
    """The data set's `split` without augmentation: a measurement of the loss does not train."""
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    cfg = OmegaConf.create(OmegaConf.to_container(dataset_cfg, resolve=True))
    if "augment" in cfg:
        with open_dict(cfg):
            cfg.augment = "none"
    data = build_data(cfg)
    return data.train if split == "train" else data.test


def fixed_batches(
    dataset: Dataset, batch_size: int, num_batches: int | None, seed: int, device: torch.device
) -> Batches:
    """`num_batches` batches (None: all) of a seeded random subset, moved to `device` once."""
    if batch_size < 1 or (num_batches is not None and num_batches < 1):
        raise UserError(f"batch_size={batch_size} and num_batches={num_batches} must be >= 1 (num_batches: or null)")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    if num_batches is not None:
        order = order[: batch_size * num_batches]
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size)
    return [(x.to(device), y.to(device)) for x, y in loader]
