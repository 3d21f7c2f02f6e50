"""Eigen-SAM: SAM's perturbation tilted towards the top Hessian eigenvector (Luo et al., NeurIPS 2024)."""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, global_dot, global_norm
from lesam.optim.sam import SAM


class EigenSAM(SAM):
    """e = rho * (g / ||g|| + alpha * sign(g.v) * v_perp), v the top Hessian eigenvector.

    Luo, Truong, Pham, Harandi, Phung, Le. "Explicit Eigenvalue Regularization Improves
    Sharpness-Aware Minimization." NeurIPS 2024 (arXiv 2501.12666, 2025). v_perp is the part of v
    orthogonal to g. As the official code (github.com/RitianLuo/EigenSAM, train.py L65 and L87-91):
    `power_iters` steps of power iteration on Hessian-vector products of the batch loss refine v,
    warm-started from the previous v (random at first), before the step of every batch whose index
    within its epoch is a positive multiple of `freq`; the index is the step count modulo
    `steps_per_epoch` (set by the training loop; without it the steps count as one long epoch).
    Until the first v, the step perturbs along the raw gradient, e = rho * g, as the official code's
    unnormalised first step does (train.py L106, sam.py L23). Defaults from the official code
    (README and utils.py): rho 0.1, alpha 0.2, freq 100, power_iters 5. As there, the Hessian is
    that of the loss with the model in eval mode; the closure must offer `hessian_products` (the
    products of the whole batch's Hessian, however the closure splits the batch), as
    lesam.methods.closure.BatchClosure does. The iteration count is fixed, so no step reads a value
    back to the host. v is kept in the optimizer state (key `eigenvector`), refined in place.

    The step count lives on the host and is advanced by `begin_step`, which also decides whether the
    step refines v; its key tells a captured step apart from one that does not, so a training loop
    that captures steps as CUDA graphs keeps one graph for each and replays the right one.
    """

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
        self.steps = 0  # steps begun, for the schedule of the power iteration
        self._refine = False  # whether the step under way refines v first

    def begin_step(self) -> Hashable:
        """Count the step and decide whether it refines v (its index in the epoch a positive multiple of `freq`)."""
        perturbing = super().begin_step()
        batch = self.steps % self.steps_per_epoch if self.steps_per_epoch else self.steps
        self._refine = self.perturbing and batch > 0 and batch % self.freq == 0
        self.steps += 1
        return perturbing, self._refine, self._has_eigenvector()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """Refine v if `begin_step` said so, then SAM's passes."""
        self._begin_if_needed()
        if closure is not None and self._refine:
            trainable = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
            self.estimate_eigenvector(closure, trainable)
        return super().step(closure)

    def estimate_eigenvector(self, closure: Callable[[], Tensor], params: list[Tensor]) -> None:
        """Power iteration v <- Hv / ||Hv|| on the batch loss's Hessian, from the stored v."""
        if not hasattr(closure, "hessian_products"):
            raise TypeError(
                "Eigen-SAM needs a closure with hessian_products(), such as lesam.methods.closure.BatchClosure"
            )
        v = [self.state[p].get("eigenvector") for p in params]
        v = [torch.randn_like(p) if u is None else u for p, u in zip(params, v, strict=True)]
        with closure.hessian_products(params) as hessian_times:
            for _ in range(self.power_iters):
                hv = hessian_times(v)
                v = torch._foreach_div(hv, global_norm(hv) + self.eps)
        for p, u in zip(params, v, strict=True):
            if "eigenvector" in self.state[p]:  # in place: every captured graph reads the same tensor
                self.state[p]["eigenvector"].copy_(u)
            else:
                self.state[p]["eigenvector"] = u.detach()

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """rho * ((1 - alpha * s * (u.v)) u + alpha * s * v), u = g / ||g||, s = sign(g.v); rho * g before any v."""
        norm = global_norm(grads)
        if not self._has_eigenvector(params):
            self.last_rho = self.radius(norm) * norm  # the length of e = rho * g
            return torch._foreach_mul(grads, self.radius(norm))
        v = [self.state[p]["eigenvector"] for p in params]
        self.last_rho = self.radius(norm)
        u = torch._foreach_div(grads, norm + self.eps)
        uv = global_dot(u, v)
        tilt = self.alpha * torch.sign(uv) * self.last_rho
        e = torch._foreach_mul(u, self.last_rho - tilt * uv)
        torch._foreach_add_(e, torch._foreach_mul(v, tilt))
        return e

    def _has_eigenvector(self, params: list[Tensor] | None = None) -> bool:
        params = params if params is not None else [p for group in self.param_groups for p in group["params"]]
        return all("eigenvector" in self.state[p] for p in params)

    def extra_state(self) -> dict:
        """The step count, so that a resumed run refines v at the same steps."""
        return {"steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        """Continue the step count."""
        self.steps = state["steps"]
