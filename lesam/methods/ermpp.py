"""ERM++ (Teterwak et al., WACV 2025): the parts of the improved DG baseline that change the loop.

- Linear-probe warm start: before full training, `linear_probe_steps` steps train the classifier
  alone (the rest frozen) with a separate plain optimizer of the same base and learning rate, as
  the official code does.
- Model parameter averaging: from step `average_start_step` on, the weights (and BatchNorm
  statistics) after every step are averaged with equal weight; the average is what is tested.
The rest of ERM++ (its data augmentation, Adam, step count and pretrained weights) are config
values of the pacs/vlcs presets; README lists what is left out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from lesam.data import DataSplits
from lesam.methods.base import Method
from lesam.models.classifier import classifier
from lesam.optim import LossScaler, build_optimizer

if TYPE_CHECKING:
    from lesam.engine.trainer import Trainer


def endless(loader: DataLoader) -> Iterator:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


class WeightAverage:
    """The equal-weight running average of a network's floating-point state (parameters and buffers)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model).eval()
        self.count = 1

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        """Fold the current weights of `model` into the average; integer buffers are copied."""
        self.count += 1
        mine, theirs = self.model.state_dict(), model.state_dict()
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        torch._foreach_lerp_([mine[k] for k in floats], [theirs[k] for k in floats], 1 / self.count)
        for key in mine.keys() - set(floats):
            mine[key].copy_(theirs[key])


class ERMPlusPlus(Method):
    """Cross-entropy training with a linear-probe warm start and weight averaging."""

    def __init__(self, cfg: DictConfig, data: DataSplits) -> None:
        super().__init__(cfg, data)
        self.linear_probe_steps, self.average_start_step = cfg.method.linear_probe_steps, cfg.method.average_start_step
        self.average: WeightAverage | None = None

    def before_training(self, trainer: Trainer) -> None:
        """The linear probe: plain steps of the base optimizer on the classifier, the rest frozen."""
        if not self.linear_probe_steps:
            return
        head = classifier(self.model)
        frozen = [p for p in self.model.parameters() if p.requires_grad and all(p is not q for q in head.parameters())]
        for p in frozen:
            p.requires_grad_(False)
        optimizer = build_optimizer(OmegaConf.merge(trainer.cfg.optimizer, {"name": "sgd"}), head)
        if trainer.optimizer.loss_scaler is not None:
            optimizer.loss_scaler = LossScaler(trainer.device)
        self.model.train()
        batches = endless(trainer.train_loader)
        for _ in range(self.linear_probe_steps):
            inputs, labels = (t.to(trainer.device, non_blocking=True) for t in next(batches))
            batch = self.batch(inputs, labels, 0.0)
            closure = trainer.closure(batch, optimizer)
            optimizer.zero_grad(set_to_none=True)
            optimizer.step(closure)
        for p in frozen:
            p.requires_grad_(True)

    def after_step(self, step: int) -> None:
        """Start or extend the average once `average_start_step` steps are taken."""
        if step < self.average_start_step:
            return
        if self.average is None:
            self.average = WeightAverage(self.model)
        else:
            self.average.add(self.model)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The averaged weights once averaging has begun."""
        return model if self.average is None else self.average.model

    def state_dict(self) -> dict:
        """The average (as `eval_model`) and how many steps it holds."""
        if self.average is None:
            return {}
        return {"eval_model": self.average.model.state_dict(), "count": self.average.count}

    def load_state_dict(self, state: dict) -> None:
        """Restore the average."""
        if "eval_model" in state:
            self.average = WeightAverage(self.model)
            self.average.model.load_state_dict(state["eval_model"])
            self.average.count = state["count"]
