"""GSAM: SAM plus an ascent on the surrogate gap, orthogonal to the perturbed gradient (Zhuang et al., ICLR 2022)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, global_dot, global_norm
from lesam.optim.sam import SAM


class GSAM(SAM):
    """Surrogate-gap guided SAM: descend along g_adv - alpha * g_perp, rho_t following the learning rate.

    Zhuang, Gong, Yuan, Cui, Adam, Dvornek, Tatikonda, Duncan, Liu. "Surrogate Gap Minimization
    Improves Sharpness-Aware Training." ICLR 2022. g_perp = g - (g.g_adv / ||g_adv||^2) g_adv is
    the part of the clean gradient orthogonal to the perturbed one, so the correction changes
    neither the perturbed loss's descent nor costs a pass (g is kept from the first pass).
    rho_t = rho_min + (rho_max - rho_min) * lr / initial_lr: rho_max at the peak learning rate,
    rho_min where it reaches 0, as the official ProportionScheduler with lr_min = 0
    (github.com/juntang-zhuang/GSAM). Defaults are the paper's ResNet values (rho_max 0.04,
    rho_min 0.02, alpha 0.01); the official PyTorch CIFAR example uses the adaptive form with
    rho 2.0 and alpha 0.4.
    """

    keeps_clean_grad = True

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho_max: float = 0.04,
        rho_min: float = 0.02,
        alpha: float = 0.01,
        adaptive: bool = False,
        **base_kwargs,
    ) -> None:
        if rho_min < 0:
            raise ValueError(f"rho_min must be >= 0, got {rho_min}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        super().__init__(params, base_optimizer, rho=rho_max, adaptive=adaptive, **base_kwargs)
        self.rho_min, self.alpha = rho_min, alpha
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def radius(self, norm: Tensor) -> Tensor:
        """rho_t, linear in the learning rate of the first group (times the schedule's multiplier)."""
        group = self.param_groups[0]
        rho = self.rho_min + (self.rho - self.rho_min) * group["lr"] / group["initial_lr"]
        return rho * self.budget

    def descent_gradient(self, grads: list[Tensor], clean: list[Tensor] | None) -> None:
        """g_adv - alpha * g_perp = (1 + alpha * c) g_adv - alpha * g, c = g.g_adv / ||g_adv||^2."""
        c = global_dot(clean, grads) / (global_norm(grads) ** 2 + self.eps)
        torch._foreach_mul_(grads, 1 + self.alpha * c)
        torch._foreach_add_(grads, clean, alpha=-self.alpha)
