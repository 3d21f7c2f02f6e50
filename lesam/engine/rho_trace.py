"""Per-step radii at a stride, kept on the device and read back once per epoch (rho.jsonl)."""

from __future__ import annotations

import torch
from torch import Tensor


class RhoTrace:
    """rho_t of every `stride`-th optimizer step (counted from the run's first step); 0 keeps none."""

    def __init__(self, stride: int) -> None:
        self.stride = stride
        self.steps: list[int] = []
        self.values: list[Tensor] = []

    def add(self, step: int, rho: Tensor) -> None:
        """Keep `rho` (a 0-d device tensor, never read here) if `step` falls on the stride."""
        if self.stride and step % self.stride == 0:
            self.steps.append(step)
            self.values.append(rho.detach().to(torch.float32, copy=True))  # a copy: a replayed graph rewrites `rho`

    def read(self) -> dict | None:
        """{"step": [...], "rho": [...]} in one host read, or None if no step was kept."""
        if not self.steps:
            return None
        return {"step": self.steps, "rho": torch.stack(self.values).tolist()}
