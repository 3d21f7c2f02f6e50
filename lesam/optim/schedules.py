"""What the learning rate and the perturbation budget are at each step.

Both are pure functions of the step, so a resumed run needs only the step to continue exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer


def cosine(progress: float) -> float:
    """Half a cosine from 1 at progress 0 to 0 at progress 1 (clamped outside)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def lr_factor(
    epoch: float,
    epochs: int,
    name: str,
    warmup_epochs: float = 0.0,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
) -> float:
    """The multiplier of the peak learning rate at a fractional epoch (linear warm-up first)."""
    if warmup_epochs and epoch < warmup_epochs:
        return epoch / warmup_epochs
    if name == "cosine":
        return cosine((epoch - warmup_epochs) / max(epochs - warmup_epochs, 1e-12))
    if name == "multistep":
        return gamma ** sum(epoch >= m for m in milestones)
    raise ValueError(f"unknown schedule '{name}'; choose one of: cosine, multistep")


def budget_factor(
    epoch: float,
    epochs: int,
    warmup_epochs: float | None = None,
    anneal_start_epoch: float | None = None,
    start_epoch: float | None = None,
) -> float:
    """The multiplier of the perturbation budget (delta, or rho) at a fractional epoch.

    0 before `start_epoch` (plain base-optimizer steps), then a linear warm-up from 0 over
    `warmup_epochs`, then a cosine from 1 to 0 between `anneal_start_epoch` and the last epoch.
    """
    since = epoch - (start_epoch or 0.0)
    if since < 0:
        return 0.0
    factor = min(since / warmup_epochs, 1.0) if warmup_epochs else 1.0
    if anneal_start_epoch is not None and epoch > anneal_start_epoch:
        factor *= cosine((epoch - anneal_start_epoch) / max(epochs - anneal_start_epoch, 1e-12))
    return factor


class StepSchedule:
    """Sets each group's learning rate and the optimizer's budget multiplier before a step."""

    def __init__(self, schedule_cfg, optimizer_cfg, epochs: int, steps_per_epoch: int) -> None:
        self.schedule_cfg, self.optimizer_cfg = schedule_cfg, optimizer_cfg
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier at a global step."""
        s = self.schedule_cfg
        return lr_factor(
            step / self.steps_per_epoch,
            self.epochs,
            s.name,
            s.get("warmup_epochs", 0.0) or 0.0,
            s.get("milestones", ()) or (),
            s.get("gamma", 0.1),
        )

    def budget_factor(self, step: int) -> float:
        """The budget multiplier at a global step."""
        o = self.optimizer_cfg
        return budget_factor(
            step / self.steps_per_epoch,
            self.epochs,
            o.get("delta_warmup_epochs"),
            o.get("anneal_start_epoch"),
            o.get("start_epoch"),
        )

    def apply(self, optimizer: Optimizer, step: int) -> None:
        """Write the values for `step` into the optimizer."""
        factor = self.lr_factor(step)
        for group in optimizer.param_groups:
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(group["initial_lr"] * factor)  # in place: a captured step reads the tensor
            else:
                group["lr"] = group["initial_lr"] * factor
        optimizer.perturb_scale = self.budget_factor(step)


def lr_on_device(optimizer: Optimizer, device: torch.device) -> None:
    """Hold each group's learning rate as a tensor on `device`, which `StepSchedule.apply` then fills in place."""
    for group in optimizer.param_groups:
        group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32, device=device)
