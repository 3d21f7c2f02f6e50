"""Eigen-SAM: SAM's perturbation tilted towards the top Hessian eigenvector (Luo et al., NeurIPS 2024)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, global_dot, global_norm
from lesam.optim.sam import SAM


class EigenSAM(SAM):
    """e = rho * (g / ||g|| + alpha * sign(g.v) * v_perp), v the top Hessian eigenvector.

    Luo, Truong, Pham, Harandi, Phung, Le. "Explicit Eigenvalue Regularization Improves
    Sharpness-Aware Minimization." NeurIPS 2024 (arXiv 2501.12666, 2025). v_perp is the part of v
    orthogonal to g. Every `freq` steps, `power_iters` steps of power iteration on Hessian-vector
    products of the batch loss refine v, warm-started from the previous v (random at first).
    Defaults from the official code (github.com/RitianLuo/EigenSAM, README and utils.py):
    rho 0.1, alpha 0.2, freq 100, power_iters 5. As there, the Hessian is that of the loss with
    the model in eval mode; the closure must offer `hessian_products` (the products of the whole
    batch's Hessian, however the closure splits the batch), as lesam.engine.closure.BatchClosure
    does. The iteration count is fixed, so no step reads a value back to the host. v is kept in
    the optimizer state (key `eigenvector`).
    """

    capturable = False  # the power iteration runs every `freq` steps, by a host-side count

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho: float = 0.1,
        alpha: float = 0.2,
        freq: int = 100,
        power_iters: int = 5,
        **base_kwargs,
    ) -> None:
        if freq < 1 or power_iters < 1:
            raise ValueError(f"freq and power_iters must be >= 1, got {freq} and {power_iters}")
        super().__init__(params, base_optimizer, rho=rho, **base_kwargs)
        self.alpha, self.freq, self.power_iters = alpha, freq, power_iters
        self.steps = 0  # steps taken, for the schedule of the power iteration

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """Refine v if due (every `freq` steps, or when there is none yet), then SAM's two passes."""
        trainable = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
        missing = any("eigenvector" not in self.state[p] for p in trainable)
        if closure is not None and self.perturbing and (missing or self.steps % self.freq == 0):
            self.estimate_eigenvector(closure, trainable)
        self.steps += 1
        return super().step(closure)

    def estimate_eigenvector(self, closure: Callable[[], Tensor], params: list[Tensor]) -> None:
        """Power iteration v <- Hv / ||Hv|| on the batch loss's Hessian, from the stored v."""
        if not hasattr(closure, "hessian_products"):
            raise TypeError(
                "Eigen-SAM needs a closure with hessian_products(), such as lesam.engine.closure.BatchClosure"
            )
        v = [self.state[p].get("eigenvector") for p in params]
        v = [torch.randn_like(p) if u is None else u for p, u in zip(params, v, strict=True)]
        with closure.hessian_products(params) as hessian_times:
            for _ in range(self.power_iters):
                hv = hessian_times(v)
                v = torch._foreach_div(hv, global_norm(hv) + self.eps)
        for p, u in zip(params, v, strict=True):
            self.state[p]["eigenvector"] = u.detach()

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """rho * ((1 - alpha * s * (u.v)) u + alpha * s * v), u = g / ||g||, s = sign(g.v)."""
        v = [self.state[p]["eigenvector"] for p in params]
        norm = global_norm(grads)
        self.last_rho = self.radius(norm)
        u = torch._foreach_div(grads, norm + self.eps)
        uv = global_dot(u, v)
        tilt = self.alpha * torch.sign(uv) * self.last_rho
        e = torch._foreach_mul(u, self.last_rho - tilt * uv)
        torch._foreach_add_(e, torch._foreach_mul(v, tilt))
        return e

    def extra_state(self) -> dict:
        """The step count, so that a resumed run refines v at the same steps."""
        return {"steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        """Continue the step count."""
        self.steps = state["steps"]
