"""LPF flatness: the loss smoothed by Gaussian weight noise, E L(w + eps), eps ~ N(0, sigma^2 I).

Bisla, Wang, Choromanska. "Low-Pass Filtering SGD for Recovering Flat Optima in the Deep Learning
Optimization Landscape." AISTATS 2022. Estimated by Monte Carlo: each draw perturbs every
parameter, measures the loss over the same fixed batches, and puts the weights back exactly.
A flat minimum keeps its loss low under the noise.
"""

from __future__ import annotations

import statistics
import time

import torch
from omegaconf import DictConfig
from torch import nn

from lesam.analysis.batches import Batches, full_fp32, loss_and_accuracy, split_batches
from lesam.analysis.loaded_run import LoadedRun
from lesam.engine.errors import UserError


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


def lpf(cfg: DictConfig, run: LoadedRun) -> dict:
    """The LPF flatness of the checkpoint over fixed batches, beside its unperturbed loss."""
    if cfg.sigma < 0 or cfg.samples < 1:
        raise UserError(f"analysis.sigma={cfg.sigma} must be >= 0 and analysis.samples={cfg.samples} >= 1")
    start = time.perf_counter()
    batches = split_batches(cfg, run.cfg.dataset, run.device)
    generator = torch.Generator(run.device).manual_seed(cfg.seed)
    with full_fp32():
        loss = loss_and_accuracy(run.model, batches)[0]
        record = lpf_record(run.model, batches, cfg.sigma, cfg.samples, generator)
    return record | {
        "loss": loss,
        "sigma": cfg.sigma,
        "samples": cfg.samples,
        "examples": sum(len(y) for _, y in batches),
        "seconds": time.perf_counter() - start,
    }
