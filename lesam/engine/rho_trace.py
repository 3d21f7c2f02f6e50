"""Per-step radii at a stride, kept on the device and read back once per epoch (rho.jsonl)."""

from __future__ import annotations

import torch
from torch import Tensor


class RhoTrace:
    """rho_t of every `stride`-th optimizer step (counted from the run's first step); 0 keeps none."""

    def __init__(self, stride: int) -> None:
        self.stride = stride
        self.steps: list[int] = []
        self.read_back: list[float] = []  # the radii of the steps before a stop, from the checkpoint
        self.values: list[Tensor] = []  # the radii of the steps since, on the device

    def add(self, step: int, rho: Tensor) -> None:
        """Keep `rho` (a 0-d device tensor, never read here) if `step` falls on the stride."""
        if self.stride and step % self.stride == 0:
            self.steps.append(step)
            self.values.append(rho.detach().float())

    def read(self) -> dict | None:
        """{"step": [...], "rho": [...]} in one host read, or None if no step was kept."""
        if not self.steps:
            return None
        return {"step": self.steps, "rho": self.read_back + (torch.stack(self.values).tolist() if self.values else [])}

    def state_dict(self) -> dict:
        """The radii kept so far, for a checkpoint taken halfway through an epoch."""
        return self.read() or {"step": [], "rho": []}

    def load_state_dict(self, state: dict) -> None:
        """Continue the trace of `state_dict()`."""
        self.steps, self.read_back, self.values = list(state["step"]), list(state["rho"]), []
