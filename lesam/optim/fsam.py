"""F-SAM: perturb along the batch's gradient noise, not the full gradient (Li et al., CVPR 2024)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params
from lesam.optim.sam import SAM


class FSAM(SAM):
    """Friendly SAM: e = rho * d / ||d||, d = g - sigma * m, m an EMA of past gradients.

    Li, Zhou, He, Cheng, Huang. "Friendly Sharpness-Aware Minimization." CVPR 2024. Defaults
    from the official code (github.com/nblt/F-SAM, train.py): rho 0.1, sigma 1, lmbda 0.95
    (run.sh uses rho 0.2 for ResNet-18 on CIFAR-100). As in that code, the perturbation uses the
    EMA of the previous steps, and only then is the EMA updated with the raw gradient:
    m <- lmbda * m + (1 - lmbda) * g; at a tensor's first step m = g and d = g. The EMA lives
    in the optimizer state (key `fsam_ema`), so `state_dict()` carries it.
    """

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho: float = 0.1,
        sigma: float = 1.0,
        lmbda: float = 0.95,
        adaptive: bool = False,
        **base_kwargs,
    ) -> None:
        if not 0 <= lmbda < 1:
            raise ValueError(f"lmbda must be in [0, 1), got {lmbda}")
        super().__init__(params, base_optimizer, rho=rho, adaptive=adaptive, **base_kwargs)
        self.sigma, self.lmbda = sigma, lmbda

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """SAM's perturbation along g - sigma * m, then the EMA m takes in g."""
        ready = [i for i, p in enumerate(params) if "fsam_ema" in self.state[p]]
        direction = list(grads)
        if ready:
            g = [grads[i] for i in ready]
            m = [self.state[params[i]]["fsam_ema"] for i in ready]
            for i, d in zip(ready, torch._foreach_add(g, m, alpha=-self.sigma), strict=True):
                direction[i] = d
            torch._foreach_mul_(m, self.lmbda)
            torch._foreach_add_(m, g, alpha=1 - self.lmbda)
        for p, g in zip(params, grads, strict=True):
            if "fsam_ema" not in self.state[p]:
                self.state[p]["fsam_ema"] = g.clone()
        return super().perturbation(params, direction)
