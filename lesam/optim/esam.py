"""ESAM: SAM on a random share of the weights and the sharpest share of the batch (Du et al., ICLR 2022)."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.base import Params
from lesam.optim.sam import SAM


class ESAM(SAM):
    """Efficient SAM: stochastic weight perturbation (beta) and sharpness-sensitive data selection (gamma).

    Du, Yan, Feng, Zhou, Zhen, Goh, Tan. "Efficient Sharpness-aware Minimization for Improved
    Training of Neural Networks." ICLR 2022. Defaults from the official code
    (github.com/dydjw9/Efficient_SAM, run.sh for ResNet-18): rho 0.05, beta 0.6, gamma 0.5.

    - Weight perturbation: each parameter tensor is perturbed with probability beta, and the
      perturbation of the chosen tensors, rho * g / ||g|| over them, is scaled by 1 / beta.
      beta = 1 perturbs every tensor. (The official code gets the same perturbation by leaving
      the other tensors out of the first backward pass; here all gradients are computed.)
    - Data selection: after the first pass, each sample's loss increase L_i(w + e) - L_i(w) is
      measured with one forward pass at w + e, and the second forward-backward pass runs on the
      int(gamma * batch) samples with the largest increase. gamma = 1 uses the whole batch and
      skips that forward pass. (The official code keeps the samples strictly above the k-th
      largest increase, one fewer.) The closure must offer `sample_losses` and `logits`, as
      lesam.methods.closure.BatchClosure does.

    The tensor mask comes from the optimizer's own generator on the host (Python's `random`, as the
    official code draws it), seeded from torch's initial seed and saved in `state_dict()`. It is drawn
    in `begin_step` and copied into a mask tensor on the device, which the perturbation reads: the same
    draws whether the step runs eagerly or as a captured CUDA graph, and no device value is read back.
    The selected samples stay on the device (a top-k of fixed size), so the whole step can be captured.
    """

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        rho: float = 0.05,
        beta: float = 0.6,
        gamma: float = 0.5,
        adaptive: bool = False,
        **base_kwargs,
    ) -> None:
        if not 0 < beta <= 1:
            raise ValueError(f"beta must be in (0, 1], got {beta}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        super().__init__(params, base_optimizer, rho=rho, adaptive=adaptive, **base_kwargs)
        self.beta, self.gamma = beta, gamma
        self.generator = random.Random(torch.initial_seed())
        tensors = [p for group in self.param_groups for p in group["params"]]
        self._index = {p: i for i, p in enumerate(tensors)}
        self._mask = torch.ones(len(tensors), device=self.budget.device)  # 1 for each tensor perturbed in this step

    def begin_step(self) -> Hashable:
        """Draw which tensors this step perturbs (each with probability beta) into the device mask."""
        key = super().begin_step()
        if self.perturbing and self.beta < 1:
            draws = [float(self.generator.random() < self.beta) for _ in range(len(self._mask))]
            self._mask.copy_(torch.tensor(draws), non_blocking=True)
        return key

    def radius(self, norm: Tensor) -> Tensor:
        """SAM's radius, scaled by 1 / beta for the tensors that are perturbed."""
        return super().radius(norm) / self.beta

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """SAM's perturbation over a random share beta of the tensors, zero on the others."""
        if self.beta < 1:
            grads = torch._foreach_mul(grads, [self._mask[self._index[p]] for p in params])
        return super().perturbation(params, grads)

    def perturbed_pass(self, closure: Callable[..., Tensor]) -> None:
        """The pass at w + e on the share gamma of the batch whose loss rose most."""
        if self.gamma >= 1:
            closure()
            return
        if not hasattr(closure, "sample_losses"):
            raise TypeError(
                "ESAM's data selection (gamma < 1) needs a closure with sample_losses() and logits, "
                "such as lesam.methods.closure.BatchClosure; or set gamma=1"
            )
        increase = closure.sample_losses() - closure.sample_losses(closure.logits)
        closure(torch.topk(increase, max(1, int(len(increase) * self.gamma))).indices)

    def extra_state(self) -> dict:
        """The state of the generator that draws the tensor mask."""
        return {"generator": self.generator.getstate()}

    def load_extra_state(self, state: dict) -> None:
        """Continue the tensor mask's random stream."""
        self.generator.setstate(state["generator"])
