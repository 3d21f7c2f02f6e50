"""SSAM: the perturbed gradient rescaled to the clean gradient's norm (Tan et al., JMLR 2025)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, global_norm
from lesam.optim.sam import SAM


class SSAM(SAM):
    """Stable SAM: descend along g_adv * ||g|| / ||g_adv||.

    Tan, Zhang, Liu, Wang, Hao. "Stabilizing Sharpness-Aware Minimization Through A Simple
    Renormalization Strategy." JMLR 26, 2025 (arXiv 2401.07250). The renormalisation gives the
    descent gradient the length of the clean one, however much larger the gradient at w + e is.
    Defaults from the official code (github.com/cltan023/stablesam2024, README): rho 0.05.
    `normalize_perturbation=False` perturbs by e = rho * g (rho * T^2 g when adaptive), the
    unnormalised form its README runs (its USAM class); True keeps SAM's e = rho * g / ||g||.
    The norms are Euclidean also when adaptive (the official code measures them in ASAM's metric).
    """

    clean_norm: Tensor | None = None  # ||g|| of the current step, set by `perturbation`

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        normalize_perturbation: bool = True,
        **base_kwargs,
    ) -> None:
        super().__init__(params, base_optimizer, rho=rho, adaptive=adaptive, **base_kwargs)
        self.normalize_perturbation = normalize_perturbation

    def radius(self, norm: Tensor) -> Tensor:
        """rho, or rho * ||g|| unnormalised (so that e = rho * g)."""
        rho = super().radius(norm)
        return rho if self.normalize_perturbation else rho * norm

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """SAM's perturbation; the clean gradient's norm is kept for the descent."""
        self.clean_norm = global_norm(grads)
        return super().perturbation(params, grads)

    def descent_gradient(self, grads: list[Tensor], clean: list[Tensor] | None) -> None:
        """g_adv rescaled to the norm of g."""
        torch._foreach_mul_(grads, self.clean_norm / (global_norm(grads) + self.eps))
