"""CIFAR-100-LT: CIFAR-100's training split thinned to an exponential profile (Cui et al., CVPR 2019).

Class c keeps n_c = floor(500 * (1 / IF) ** (c / 99)) of its 500 training images, IF being the
imbalance factor (head count over tail count); which images it keeps is drawn once with a fixed
seed. The test split stays CIFAR-100's balanced 100 images per class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lesam.core.errors import UserError
from lesam.data.datasets import DataSplits, cifar


def long_tail_counts(num_classes: int, max_count: int, imbalance_factor: float) -> list[int]:
    """n_c = floor(max_count * (1 / IF) ** (c / (num_classes - 1))) for c = 0 .. num_classes - 1."""
    return [math.floor(max_count * (1 / imbalance_factor) ** (c / (num_classes - 1))) for c in range(num_classes)]


def long_tail_indices(labels: Sequence[int], counts: Sequence[int], seed: int) -> list[int]:
    """Indices keeping counts[c] images of each class c, drawn without replacement by `seed`, in data order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(counts)]
    return sorted(int(i) for i in np.concatenate(kept))


def cifar100_lt(cfg: DictConfig) -> DataSplits:
    """CIFAR-100 with a long-tailed training split; its per-class counts give many/medium/few-shot accuracy."""
    if not cfg.imbalance_factor >= 1:
        raise UserError(f"dataset.imbalance_factor={cfg.imbalance_factor} must be >= 1 (the paper uses 100 and 50)")
    splits = cifar(OmegaConf.merge(cfg, {"name": "cifar100"}))
    train = splits.train
    counts = long_tail_counts(cfg.num_classes, len(train.targets) // cfg.num_classes, cfg.imbalance_factor)
    kept = long_tail_indices(train.targets, counts, cfg.split_seed)
    train.data, train.targets = train.data[kept], [train.targets[i] for i in kept]
    splits.class_counts = counts
    return splits
