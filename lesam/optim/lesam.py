"""LE-SAM: fix the first-order loss increase, not the radius (ICML 2026)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, SharpnessAware

PLUS_FORMS = ("paper", "authors")  # LE-SAM+'s descent: (1 + alpha) g_adv - alpha g, or its code's g_adv - alpha g


class LESAM(SharpnessAware):
    """Loss-Equated SAM: rho_t = delta / (||g|| + eps), clipped to rho_max; e = rho_t * g / ||g||.

    "Fix the Loss, Not the Radius: Rethinking the Adversarial Perturbation of Sharpness-Aware
    Minimization", ICML 2026. The first-order loss increase g.e equals the budget delta at every
    step, so what the update learns from is the curvature. With alpha > 0 this is LE-SAM+:
    the objective L(w+e) + alpha * (L(w+e) - L(w)) descends along (1 + alpha) g_adv - alpha g;
    `plus_form="authors"` descends along g_adv - alpha g instead, as the authors' code does.
    With `adaptive=True` the radius is measured in ASAM's metric, which keeps g.e = delta:
    e = delta * T^2 g / ||T g||^2.
    """

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        delta: float = 0.35,
        rho_max: float | None = None,
        eps: float = 1e-12,
        alpha: float = 0.0,
        adaptive: bool = False,
        plus_form: str = "paper",
        **base_kwargs,
    ) -> None:
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if rho_max is not None and rho_max <= 0:
            raise ValueError(f"rho_max must be > 0 or None, got {rho_max}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if plus_form not in PLUS_FORMS:
            raise ValueError(f"plus_form must be one of {', '.join(PLUS_FORMS)}, got {plus_form!r}")
        super().__init__(params, base_optimizer, adaptive=adaptive, **base_kwargs)
        self.delta, self.rho_max, self.eps, self.alpha, self.plus_form = delta, rho_max, eps, alpha, plus_form
        self.keeps_clean_grad = alpha != 0
        self.adv_weight = 1 + alpha if plus_form == "paper" else 1.0  # g_adv's weight in LE-SAM+'s descent
        # written in place by every perturbed step, so that a captured step updates the same tensors
        self.last_grad_norm = torch.zeros_like(self.budget)
        self.last_clipped = None if rho_max is None else torch.zeros_like(self.budget)

    def radius(self, norm: Tensor) -> Tensor:
        """The radius that spends the budget delta to first order, clipped to rho_max; notes ||g|| and the clip."""
        self.last_grad_norm.copy_(norm)
        rho = self.delta * self.budget / (norm + self.eps)
        if self.rho_max is None:
            return rho
        self.last_clipped.copy_(rho > self.rho_max)
        return rho.clamp(max=self.rho_max)

    def descent_gradient(self, grads: list[Tensor], clean: list[Tensor] | None) -> None:
        """LE-SAM+: (1 + alpha) * g_adv - alpha * g (or g_adv - alpha * g); plain LE-SAM keeps g_adv."""
        if clean is not None:
            torch._foreach_mul_(grads, self.adv_weight)
            torch._foreach_add_(grads, clean, alpha=-self.alpha)
