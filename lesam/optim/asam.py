"""ASAM: SAM in a scale-invariant metric (Kwon et al., ICML 2021)."""

from __future__ import annotations

from torch.optim import Optimizer

from lesam.optim.base import Params
from lesam.optim.sam import SAM


class ASAM(SAM):
    """Adaptive SAM: e = rho * T^2 g / ||T g||, T = |w| + eta on weight tensors (1 on biases).

    Kwon, Kim, Park, Choi. "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
    Learning of Deep Neural Networks." ICML 2021. Defaults from the official code
    (github.com/SamsungLabs/ASAM, asam.py and its README): rho 0.5 on CIFAR-10 (1.0 on
    CIFAR-100), eta 0.01 (asam.py's default; its CIFAR example runs eta 0). As in that code, T
    scales the tensors whose name contains 'weight' (convolution, linear and normalisation
    weights) and leaves biases in the Euclidean metric; the factory passes the parameters with
    their names (without names, every tensor is scaled).
    """

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho: float = 0.5,
        eta: float = 0.01,
        **base_kwargs,
    ) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        super().__init__(params, base_optimizer, rho=rho, adaptive=True, **base_kwargs)
        self.eta = eta
