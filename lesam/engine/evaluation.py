"""Test loss and accuracy of a model over a loader."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn
from torch.utils.data import DataLoader

from lesam.engine.epoch_stats import EpochStats


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: AbstractContextManager,
    channels_last: bool = False,
) -> dict:
    """`test_loss` and `test_acc` (percent) of `model` in eval mode; one host read at the end.

    With several processes each tests the part of the loader that is its own and the sums are
    added up, so every process returns the result over the whole set.
    """
    model.eval()
    stats = EpochStats(device)
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(inputs)
        stats.add_batch(torch.nn.functional.cross_entropy(logits.float(), labels), logits, labels)
    stats.all_reduce()
    return stats.read("test")
