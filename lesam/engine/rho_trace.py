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
        self.read_back: dict[str, list] = {"rho": [], "clipped": []}  # the steps before a stop, from the checkpoint
        self.values: list[Tensor] = []  # the radii of the steps since, on the device
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
        values = torch.stack(self.values + self.clipped).tolist() if self.values else []
        rho = self.read_back["rho"] + values[: len(self.values)]
        clipped = self.read_back["clipped"] + [v == 1 for v in values[len(self.values) :]]
        return {"step": self.steps, "rho": rho} | ({"clipped": clipped} if clipped else {})

    def state_dict(self) -> dict:
        """The radii kept so far, for a checkpoint taken halfway through an epoch."""
        return self.read() or {"step": [], "rho": []}

    def load_state_dict(self, state: dict) -> None:
        """Continue the trace of `state_dict()`."""
        self.steps, self.values, self.clipped = list(state["step"]), [], []
        self.read_back = {"rho": list(state["rho"]), "clipped": list(state.get("clipped", []))}
