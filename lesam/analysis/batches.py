"""The fixed batches an analysis measures the loss on, and the full fp32 it measures it in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from lesam.data import build_data
from lesam.engine.errors import UserError
from lesam.engine.evaluation import evaluate

SPLITS = ("train", "test")
Batches = list[tuple[Tensor, Tensor]]


def unaugmented_split(dataset_cfg: DictConfig, split: str) -> Dataset:
    """The data set's `split` without augmentation: an analysis measures the loss, it does not train."""
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


def split_batches(cfg: DictConfig, dataset_cfg: DictConfig, device: torch.device) -> Batches:
    """The batches an analysis config names: its `split`, `batch_size`, `num_batches` and `seed`."""
    dataset = unaugmented_split(dataset_cfg, cfg.split)
    return fixed_batches(dataset, cfg.batch_size, cfg.num_batches, cfg.seed, device)


def loss_and_accuracy(model: nn.Module, batches: Batches) -> tuple[float, float]:
    """The model's mean cross-entropy and accuracy (percent) over the batches, in eval mode."""
    result = evaluate(model, batches, batches[0][0].device, nullcontext())
    return result["test_loss"], result["test_acc"]


@contextmanager
def full_fp32() -> Iterator[None]:
    """Turn TF32 off for the block: curvature and small loss differences need every bit of fp32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
