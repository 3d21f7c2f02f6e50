"""SAM: a fixed radius along the gradient (Foret et al., ICLR 2021); ASAM when adaptive."""

from __future__ import annotations

from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params, SharpnessAware


class SAM(SharpnessAware):
    """Sharpness-Aware Minimization: e = rho * g / ||g||.

    Foret, Kleiner, Mobahi, Neyshabur. "Sharpness-Aware Minimization for Efficiently Improving
    Generalization." ICLR 2021. With `adaptive=True`, ASAM's scale-invariant ball
    (Kwon et al., ICML 2021): e = rho * T^2 g / ||T g||, T = |w| + eta.
    """

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        **base_kwargs,
    ) -> None:
        if rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        super().__init__(params, base_optimizer, adaptive=adaptive, **base_kwargs)
        self.rho = rho

    def radius(self, norm: Tensor) -> Tensor:
        """The fixed radius rho (times the schedule's multiplier)."""
        return self.rho * self.budget
