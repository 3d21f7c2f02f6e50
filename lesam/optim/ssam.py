"""SSAM: the perturbed gradient rescaled to the clean gradient's norm (Tan et al., JMLR 2025)."""

from __future__ import annotations

import torch
from torch import Tensor

from lesam.optim.base import global_norm
from lesam.optim.sam import SAM


class SSAM(SAM):
    """Stable SAM: descend along g_adv * ||g|| / ||g_adv||.

    Tan, Zhang, Liu, Wang, Hao. "Stabilizing Sharpness-Aware Minimization Through A Simple
    Renormalization Strategy." JMLR 26, 2025 (arXiv 2401.07250). The renormalisation gives the
    descent gradient the length of the clean one, however much larger the gradient at w + e is.
    Defaults from the official code (github.com/cltan023/stablesam2024, README): rho 0.05.
    The norms are Euclidean also when adaptive (the official code measures them in ASAM's metric).
    """

    clean_norm: Tensor | None = None  # ||g|| of the current step, set by `perturbation`

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """SAM's perturbation; the clean gradient's norm is kept for the descent."""
        self.clean_norm = global_norm(grads)
        return super().perturbation(params, grads)

    def descent_gradient(self, grads: list[Tensor], clean: list[Tensor] | None) -> None:
        """g_adv rescaled to the norm of g."""
        torch._foreach_mul_(grads, self.clean_norm / (global_norm(grads) + self.eps))
