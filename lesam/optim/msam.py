"""Momentum-SAM: perturb along the momentum buffer, one pass per step (Becker et al., NeurIPS 2025)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, SharpnessAware, global_norm


class MSAM(SharpnessAware):
    """The gradient is taken at w - rho * v / ||v||, v the base optimizer's momentum buffer.

    Becker, Altrock, Risse. "Momentum-SAM: Sharpness Aware Minimization without Computational
    Overhead." NeurIPS 2025 (arXiv 2401.12033). The perturbation reuses the momentum buffer, so a
    step costs one forward-backward pass, as plain SGD. The sign and the default rho 3 are the
    official code's (github.com/MarlonBecker/MSAM, optimizer/msam.py and README): v is PyTorch's
    buffer (an average of past gradients, weight decay included), and the perturbation steps
    along the last update, -v. Where the official code keeps the weights perturbed between steps
    (and moves them back before a test), `step(closure)` perturbs before its pass and restores w
    bitwise after it, so outside a step the weights are always w: evaluation and checkpoints see
    the unperturbed model. Weight decay acts on w (the official code applies it at w + e). The
    first step has no buffer yet and is a plain SGD step. One pass: use `step(closure)`, not
    `first_step` / `second_step`. Every forward pass runs at w + e, so BatchNorm's running statistics
    describe the perturbed weights: as the official code does before its final test (main.py
    L140-170), a training loop recomputes them at w with one pass over the training data.
    """

    passes = 1
    refresh_bn_before_final_test = True

    def __init__(self, params: Params, base_optimizer: type[Optimizer], rho: float = 3.0, **base_kwargs) -> None:
        if rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        super().__init__(params, base_optimizer, **base_kwargs)
        if not all(group.get("momentum", 0) > 0 for group in self.param_groups):
            raise ValueError(
                "MSAM perturbs along the momentum buffer: it needs optimizer.base=sgd with optimizer.momentum > 0"
            )
        self.rho = rho

    def radius(self, norm: Tensor) -> Tensor:
        """The fixed radius rho (times the schedule's multiplier)."""
        return self.rho * self.budget

    def perturbation(self, params: list[Tensor], buffers: list[Tensor]) -> list[Tensor]:
        """e = -rho * v / ||v|| for the momentum buffers v of `params`."""
        norm = global_norm(buffers)
        self.last_rho = self.radius(norm)
        return torch._foreach_mul(buffers, -self.last_rho / (norm + self.eps))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """Perturb along the buffer, run the one pass, restore w exactly, step the base optimizer."""
        if closure is None:
            raise ValueError("MSAM.step needs a closure that runs forward and backward")
        params = [p for group in self.param_groups for p in group["params"] if "momentum_buffer" in self.state[p]]
        perturbed = bool(params) and self.perturb_scale > 0
        if perturbed:
            w = self._buffers("w", params)
            torch._foreach_copy_(w, params)
            torch._foreach_add_(params, self.perturbation(params, [self.state[p]["momentum_buffer"] for p in params]))
        loss = torch.enable_grad()(closure)()
        if perturbed:
            torch._foreach_copy_(params, w)
        self.plain_step()
        return loss
