"""Test loss and accuracy do not depend on how the test set is cut into batches (trainer.eval_batch_size)."""

from contextlib import nullcontext

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lesam.engine.evaluation import evaluate


class PixelLogits(nn.Module):
    """Each sample's first ten pixels, scaled, as its logits: computed sample by sample, so that a batch of
    any size gives every sample the same logits (a matrix kernel may round differently by batch shape)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return 7.0 * inputs.flatten(1)[:, :10]


def test_the_eval_batch_size_changes_neither_test_loss_nor_accuracy():
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(100, 1, 4, 4, generator=generator), torch.randint(0, 10, (100,), generator=generator)
    data = TensorDataset(images, labels)
    results = [
        evaluate(PixelLogits(), DataLoader(data, batch_size=size), torch.device("cpu"), nullcontext())
        for size in (1, 7, 32, 100)
    ]
    assert all(result == results[0] for result in results), results
    logits = PixelLogits()(images).double()
    expected_loss = nn.functional.cross_entropy(logits, labels).item()
    expected_acc = 100.0 * (logits.argmax(dim=1) == labels).double().mean().item()
    assert results[0]["test_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert results[0]["test_acc"] == pytest.approx(expected_acc, rel=1e-12)
