"""Test loss and accuracy of a model over a loader, and their breakdowns by domain and by shot group."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from torch.utils.data import DataLoader

from lesam.data.fixed_batches import Batches
from lesam.engine import distributed


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: AbstractContextManager,
    channels_last: bool = False,
    num_classes: int | None = None,
) -> dict:
    """`test_loss` and `test_acc` (percent) of `model` in eval mode; one host read at the end.

    Each sample's loss is kept and all are added up at once, in float64: how the set is cut into
    batches does not change the sum (trainer.eval_batch_size is operational).
    With `num_classes`, also `class_acc`: each class's accuracy (percent; None for a class not tested).
    With several processes each tests the part of the loader that is its own and the sums are
    added up, so every process returns the result over the whole set.
    """
    model.eval()
    losses = [torch.zeros(0, device=device)]  # each batch's per-sample losses (a process may get no batch)
    correct = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros(2, num_classes or 0, device=device, dtype=torch.float64)  # correct, seen per class
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(inputs)
        losses.append(torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none"))
        right = (logits.argmax(dim=1) == labels).double()
        correct += right.sum()
        if num_classes:
            hits[0].index_add_(0, labels, right)
            hits[1].index_add_(0, labels, torch.ones_like(right))
    per_sample = torch.cat(losses).double()
    sums = distributed.all_reduce(torch.stack([per_sample.sum(), correct, per_sample.new_tensor(len(per_sample))]))
    loss_sum, correct_sum, samples = sums.tolist()
    samples = max(samples, 1)
    record = {"test_loss": loss_sum / samples, "test_acc": 100.0 * correct_sum / samples}
    if num_classes:
        hits = distributed.all_reduce(hits)
        record["class_acc"] = [100.0 * c / n if n else None for c, n in zip(*hits.tolist(), strict=True)]
    return record


def loss_and_accuracy(model: nn.Module, batches: Batches) -> tuple[float, float]:
    """The model's mean cross-entropy and accuracy (percent) over fixed batches, in eval mode."""
    result = evaluate(model, batches, batches[0][0].device, nullcontext())
    return result["test_loss"], result["test_acc"]


def domain_record(tested: dict[str, dict]) -> dict:
    """Per-domain test results -> their mean loss and accuracy, and `domain_acc`: each domain's accuracy."""
    return {
        "test_loss": sum(r["test_loss"] for r in tested.values()) / len(tested),
        "test_acc": sum(r["test_acc"] for r in tested.values()) / len(tested),
        "domain_acc": {domain: r["test_acc"] for domain, r in tested.items()},
    }


MANY_SHOT_MIN = 101  # training images per class from which a class is many-shot (GLMC, Liu et al. 2019: > 100)


def shot_groups(class_counts: list[int], few_shot_max: int) -> dict[str, list[bool]]:
    """Which classes are many- (> 100 images), medium- and few-shot (<= `few_shot_max` images)."""
    return {
        "many": [n >= MANY_SHOT_MIN for n in class_counts],
        "medium": [few_shot_max < n < MANY_SHOT_MIN for n in class_counts],
        "few": [n <= few_shot_max for n in class_counts],
    }


def shot_record(record: dict, class_counts: list[int], few_shot_max: int) -> dict:
    """Replace `class_acc` by `shot_acc`: the mean class accuracy of each shot group (None if it is empty)."""
    class_acc = record.pop("class_acc")
    shot_acc = {}
    for group, members in shot_groups(class_counts, few_shot_max).items():
        accs = [a for a, member in zip(class_acc, members, strict=True) if member and a is not None]
        shot_acc[group] = sum(accs) / len(accs) if accs else None
    return record | {"shot_acc": shot_acc}
