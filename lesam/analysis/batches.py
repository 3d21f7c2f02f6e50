"""The fixed batches an analysis config names."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from lesam.data.fixed_batches import Batches, fixed_batches, unaugmented_split


def split_batches(cfg: DictConfig, dataset_cfg: DictConfig, device: torch.device) -> Batches:
    """The batches of an analysis config's `split`, `batch_size`, `num_batches` and `seed`."""
    dataset = unaugmented_split(dataset_cfg, cfg.split)
    return fixed_batches(dataset, cfg.batch_size, cfg.num_batches, cfg.seed, device)
