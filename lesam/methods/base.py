"""ERM, and the hooks through which a training method changes the loop (GLMC, ERM++).

The trainer calls a method at these points: `wrap` the model and `train_set` the training data
once; `warm_start` when a run starts from scratch (the trainer runs the steps it declares); per
step, `batch` once (so that both passes of a SAM-style step see the same batch) and `loss` once
per forward-backward pass, then `after_step`; `eval_model` picks the weights that are tested.
`state_dict` goes into last.pt.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from lesam.data import DataSplits
from lesam.methods.batch import Batch


def upcast(logits: Tensor) -> Tensor:
    """Half-precision outputs in float32 for the loss; float32 and float64 ones as they are."""
    return logits if logits.dtype == torch.float64 else logits.float()


@dataclass(frozen=True)
class WarmStart:
    """Steps before the run's own, in which only `module` trains, with plain steps of the run's base optimizer."""

    module: nn.Module
    steps: int


class Method:
    """Empirical risk minimisation: cross-entropy of the model's logits, nothing else changed."""

    capturable = True  # a step is its closure alone, with no host-side work around it (one CUDA graph can hold it)

    def __init__(self, cfg: DictConfig, data: DataSplits) -> None:
        self.label_smoothing = cfg.trainer.label_smoothing
        self.model: nn.Module | None = None

    def wrap(self, model: nn.Module) -> nn.Module:
        """The network to train, built around the backbone `model` (which it keeps a reference to)."""
        self.model = model
        return model

    def train_set(self, dataset: Dataset) -> Dataset:
        """What the training loader iterates over."""
        return dataset

    def warm_start(self) -> WarmStart | None:
        """Steps the trainer runs before the first step of a run that starts from scratch (None: none)."""
        return None

    def batch(self, inputs: Tensor, labels: Tensor, epoch: float) -> Batch:
        """One step's batch (on the device), prepared once for all passes of the step."""
        return Batch(inputs, labels)

    def loss(self, model: nn.Module, batch: Batch, autocast: AbstractContextManager) -> tuple[Tensor, Tensor]:
        """The mean loss of `batch` under `model` and the logits its training accuracy is read from."""
        with autocast:
            logits = model(batch.inputs)
        return F.cross_entropy(upcast(logits), batch.labels, label_smoothing=self.label_smoothing), logits

    def after_step(self, step: int, batch: Batch) -> None:
        """Runs after each optimizer step on `batch`; `step` counts the steps taken so far."""

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The network whose test accuracy is reported (`model`, the one being trained, for ERM)."""
        return model

    def state_dict(self) -> dict:
        """The method's own state; an `eval_model` entry holds the tested weights where they differ."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`'s output."""
