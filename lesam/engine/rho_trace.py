"""Per-step radii at a stride, kept on the device and read back once per epoch (rho.jsonl)."""

from __future__ import annotations

import torch
from torch import Tensor


class RhoTrace:
    """rho_t of every `stride`-th optimizer step (counted from the run's first step), and whether it was
    clipped where the optimizer has a clip; 0 keeps none."""

    def __init__(self, stride: int) -> None:
        self.stride = stride
        self.steps: list[int] = []
        self.values: list[Tensor] = []
        self.clipped: list[Tensor] = []

    def add(self, step: int, rho: Tensor, clipped: Tensor | None = None) -> None:
        """Keep `rho` and `clipped` (0-d device tensors, never read here) if `step` falls on the stride."""
        if self.stride and step % self.stride == 0:
            self.steps.append(step)
            # copies: an optimizer (or a captured step) may write the same tensors again at the next step
            self.values.append(rho.detach().to(torch.float32, copy=True))
            if clipped is not None:
                self.clipped.append(clipped.detach().to(torch.float32, copy=True))

    def read(self) -> dict | None:
        """{"step": [...], "rho": [...]} and, with a clip, "clipped": [true/false, ...], in one host read;
        None if no step was kept."""
        if not self.steps:
            return None
        values = torch.stack(self.values + self.clipped).tolist()
        trace = {"step": self.steps, "rho": values[: len(self.steps)]}
        return trace | ({"clipped": [v == 1 for v in values[len(self.steps) :]]} if self.clipped else {})
