"""Per-epoch sums kept on the device, read back once at the end of the epoch."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lesam.engine import distributed


def _scalar(value: float, device: torch.device) -> Tensor:
    return torch.full((), value, device=device, dtype=torch.float64)


class EpochStats:
    """Loss, accuracy and radius statistics of one epoch; `add_*` never syncs with the host."""

    def __init__(self, device: torch.device) -> None:
        self.loss, self.correct, self.rho_sum = (_scalar(0.0, device) for _ in range(3))
        self.rho_min, self.rho_max = _scalar(math.inf, device), _scalar(-math.inf, device)
        self.samples = 0
        self.rho_steps = 0

    def add_batch(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Accumulate a batch's mean loss (weighted by its size) and its correct predictions."""
        self.loss += loss.detach().double() * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.samples += len(labels)

    def add_rho(self, rho: Tensor) -> None:
        """Accumulate the radius of one perturbed step."""
        rho = rho.detach().double()
        self.rho_sum += rho
        torch.minimum(self.rho_min, rho, out=self.rho_min)
        torch.maximum(self.rho_max, rho, out=self.rho_max)
        self.rho_steps += 1

    def all_reduce(self) -> None:
        """Sum (and min, max) the sums of all processes into every process's copy."""
        if distributed.world_size() == 1:
            return
        counts = torch.tensor([self.samples, self.rho_steps], device=self.loss.device, dtype=torch.float64)
        sums = distributed.all_reduce(torch.stack([self.loss, self.correct, self.rho_sum, *counts]))
        self.loss, self.correct, self.rho_sum = sums[0], sums[1], sums[2]
        self.samples, self.rho_steps = int(sums[3]), int(sums[4])
        distributed.all_reduce(self.rho_min, distributed.dist.ReduceOp.MIN)
        distributed.all_reduce(self.rho_max, distributed.dist.ReduceOp.MAX)

    def state_dict(self) -> dict:
        """The sums so far, for a checkpoint taken halfway through an epoch."""
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        """Continue the sums of `state_dict()` (tensors onto this object's device)."""
        device = self.loss.device
        for name, value in state.items():
            setattr(self, name, value.to(device) if isinstance(value, Tensor) else value)

    def read(self, prefix: str) -> dict:
        """The epoch's means (accuracy in percent) in one host read; rho fields only if perturbed."""
        loss, correct, rho_sum, rho_min, rho_max = torch.stack(
            [self.loss, self.correct, self.rho_sum, self.rho_min, self.rho_max]
        ).tolist()
        n = max(self.samples, 1)
        record = {f"{prefix}_loss": loss / n, f"{prefix}_acc": 100.0 * correct / n}
        if self.rho_steps:
            record |= {"rho_mean": rho_sum / self.rho_steps, "rho_min": rho_min, "rho_max": rho_max}
        return record
