"""Per-epoch sums kept on the device, read back once at the end of the epoch."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lesam.engine import distributed

SUMS = ("loss", "correct", "rho_sum", "clipped", "grad_norm_sum")  # summed over processes, as are COUNTS
COUNTS = ("samples", "rho_steps", "clip_steps", "grad_norm_steps")


def _scalar(value: float, device: torch.device) -> Tensor:
    return torch.full((), value, device=device, dtype=torch.float64)


class EpochStats:
    """Loss, accuracy and radius statistics of one epoch (with the radius clip's, where there is one);
    `add_*` never syncs with the host."""

    def __init__(self, device: torch.device) -> None:
        self.loss, self.correct, self.rho_sum, self.clipped, self.grad_norm_sum = (_scalar(0.0, device) for _ in SUMS)
        self.rho_min, self.rho_max = _scalar(math.inf, device), _scalar(-math.inf, device)
        self.samples = 0
        self.rho_steps = 0
        self.clip_steps = 0  # perturbed steps of an optimizer with a radius clip
        self.grad_norm_steps = 0  # perturbed steps of an optimizer that keeps the gradient norm

    def add_batch(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Accumulate a batch's mean loss (weighted by its size) and its correct predictions."""
        self.loss += loss.detach().double() * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.samples += len(labels)

    def add_rho(self, rho: Tensor, clipped: Tensor | None = None, grad_norm: Tensor | None = None) -> None:
        """Accumulate the radius of one perturbed step, with whether it was clipped and the gradient norm it
        came from where the optimizer gives them (LE-SAM's `last_clipped`, `last_grad_norm`)."""
        rho = rho.detach().double()
        self.rho_sum += rho
        torch.minimum(self.rho_min, rho, out=self.rho_min)
        torch.maximum(self.rho_max, rho, out=self.rho_max)
        self.rho_steps += 1
        if clipped is not None:
            self.clipped += clipped
            self.clip_steps += 1
        if grad_norm is not None:
            self.grad_norm_sum += grad_norm
            self.grad_norm_steps += 1

    def all_reduce(self) -> None:
        """Sum (and min, max) the sums of all processes into every process's copy."""
        if distributed.world_size() == 1:
            return
        counts = torch.tensor([getattr(self, n) for n in COUNTS], device=self.loss.device, dtype=torch.float64)
        reduced = distributed.all_reduce(torch.stack([*(getattr(self, n) for n in SUMS), *counts]))
        for name, value in zip(SUMS, reduced[: len(SUMS)], strict=True):
            setattr(self, name, value)
        for name, value in zip(COUNTS, reduced[len(SUMS) :].tolist(), strict=True):
            setattr(self, name, int(value))
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
        """The epoch's means (accuracy in percent) in one host read; radius fields only if perturbed, clip
        fields only with a clip. Step counts are per process: every process takes each step."""
        loss, correct, rho_sum, clipped, grad_norm_sum, rho_min, rho_max = torch.stack(
            [*(getattr(self, n) for n in SUMS), self.rho_min, self.rho_max]
        ).tolist()
        n = max(self.samples, 1)
        record = {f"{prefix}_loss": loss / n, f"{prefix}_acc": 100.0 * correct / n}
        processes = distributed.world_size()
        if self.rho_steps:
            record |= {"rho_mean": rho_sum / self.rho_steps, "rho_min": rho_min, "rho_max": rho_max}
            record["perturbed_steps"] = self.rho_steps // processes
        if self.grad_norm_steps:
            record["grad_norm_mean"] = grad_norm_sum / self.grad_norm_steps
        if self.clip_steps:
            clipped_steps = clipped / processes  # whole unless processes perturb with their own gradients
            record["clipped_steps"] = int(clipped_steps) if clipped_steps.is_integer() else clipped_steps
            record["clipped_fraction"] = clipped / self.clip_steps
        return record
