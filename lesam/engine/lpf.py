"""LPF flatness: the loss smoothed by Gaussian weight noise, E L(w + eps), eps ~ N(0, sigma^2 I).

Bisla, Wang, Choromanska. "Low-Pass Filtering SGD for Recovering Flat Optima in the Deep Learning
Optimization Landscape." AISTATS 2022. Estimated by Monte Carlo: each draw perturbs every
parameter, measures the loss over the same fixed batches, and puts the weights back exactly.
A flat minimum keeps its loss low under the noise. The trainer measures it during training
(`trainer.lpf`), `analyze.py analysis=lpf` on a checkpoint.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from lesam.data.fixed_batches import Batches
from lesam.engine.evaluation import loss_and_accuracy


@torch.no_grad()
def noisy_losses(
    model: nn.Module, batches: Batches, sigma: float, samples: int, generator: torch.Generator
) -> list[float]:
    """The loss at w + eps for `samples` draws of eps ~ N(0, sigma^2 I); w is restored bitwise after."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    losses = []
    try:
        for _ in range(samples):
            for p in params:
                noise = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
                p.add_(noise, alpha=sigma)
            losses.append(loss_and_accuracy(model, batches)[0])
            torch._foreach_copy_(params, saved)
    finally:
        torch._foreach_copy_(params, saved)
    return losses


def lpf_record(model: nn.Module, batches: Batches, sigma: float, samples: int, generator: torch.Generator) -> dict:
    """`lpf`, the Monte Carlo mean, and `lpf_std`, the spread of the draws around it."""
    losses = noisy_losses(model, batches, sigma, samples, generator)
    return {"lpf": statistics.fmean(losses), "lpf_std": statistics.stdev(losses) if len(losses) > 1 else 0.0}
