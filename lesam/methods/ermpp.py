"""ERM++ (Teterwak et al., WACV 2025): the parts of the improved DG baseline that change the loop.

- Linear-probe warm start: before full training, `linear_probe_steps` steps train the classifier
  alone (the rest frozen) with a separate plain optimizer of the same base and learning rate, as
  the official code does; the method declares them and the trainer runs them.
- Model parameter averaging: from step `average_start_step` on, the parameters after every step
  are averaged with equal weight (before it, the copy follows them); the copy's BatchNorm
  statistics come from forwarding each training batch through it. The copy is what is tested.
The rest of ERM++ (its data augmentation, Adam, step count and pretrained weights) are config
values of the pacs/vlcs presets; README lists what is left out.
"""

from __future__ import annotations

import copy

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from lesam.data import DataSplits
from lesam.methods.base import Method, WarmStart
from lesam.methods.batch import Batch
from lesam.models.classifier import classifier


class WeightAverage:
    """A copy of a network whose parameters follow the online ones, then average them with equal weight from
    a step on; its BatchNorm statistics are its own, from forwarding each training batch through it, as
    ERM++ does (main_erm.py L573-578: network_sma(images) after every step; util.py L15-30: parameters only)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model).eval()
        self.count = 0  # steps averaged so far

    @torch.no_grad()
    def update(self, model: nn.Module, average: bool) -> None:
        """Fold the parameters of `model` into the average, or (before averaging starts) copy them."""
        self.count = self.count + 1 if average else 0
        weight = 1 / self.count if average else 1.0
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), weight)

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> None:
        """Move the BatchNorm statistics with `inputs`, as a training forward pass does."""
        self.model.train()
        self.model(inputs)
        self.model.eval()


class ERMPlusPlus(Method):
    """Cross-entropy training with a linear-probe warm start and weight averaging."""

    capturable = False  # the average is updated on the host's count of steps

    def __init__(self, cfg: DictConfig, data: DataSplits) -> None:
        super().__init__(cfg, data)
        self.linear_probe_steps, self.average_start_step = cfg.method.linear_probe_steps, cfg.method.average_start_step
        self.average: WeightAverage | None = None

    def warm_start(self) -> WarmStart | None:
        """The linear probe: the classifier alone, for `linear_probe_steps` steps."""
        return WarmStart(classifier(self.model), self.linear_probe_steps) if self.linear_probe_steps else None

    def after_step(self, step: int, batch: Batch) -> None:
        """Update the averaged copy (averaging from `average_start_step` on) and forward the batch through it."""
        if self.average is None:
            self.average = WeightAverage(self.model)
        self.average.update(self.model, average=step >= self.average_start_step)
        self.average.forward(batch.inputs)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The averaged copy (ERM++ tests it), once training has begun."""
        return model if self.average is None else self.average.model

    def state_dict(self) -> dict:
        """The averaged copy (as `eval_model`) and how many steps it averages."""
        if self.average is None:
            return {}
        return {"eval_model": self.average.model.state_dict(), "count": self.average.count}

    def load_state_dict(self, state: dict) -> None:
        """Restore the averaged copy."""
        if "eval_model" in state:
            self.average = WeightAverage(self.model)
            self.average.model.load_state_dict(state["eval_model"])
            self.average.count = state["count"]
