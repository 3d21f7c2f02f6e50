"""Loss landscapes along filter-normalised random directions (Li et al. 2018): a line and a plane.

Li, Xu, Taylor, Studer, Goldstein. "Visualizing the Loss Landscape of Neural Nets." NeurIPS 2018.
A direction is Gaussian noise with each filter (each output unit of a weight) rescaled to the norm
of the same filter of the weights, so that the plots of differently scaled networks compare.
Biases and BatchNorm parameters (the one-dimensional ones) get no component, as in the paper.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from lesam.analysis.batches import split_batches
from lesam.analysis.loaded_run import LoadedRun
from lesam.core.errors import UserError
from lesam.data.fixed_batches import Batches
from lesam.engine.evaluation import loss_and_accuracy
from lesam.engine.precision import full_fp32


def filter_normalised_direction(params: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """A Gaussian direction (drawn on the CPU, so any device gets the same one) scaled filter by filter."""
    direction = []
    for p in params:
        d = torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
        if p.dim() <= 1:
            d.zero_()
        else:
            rows, weights = d.view(len(d), -1), p.detach().reshape(len(p), -1)
            rows.mul_(weights.norm(dim=1, keepdim=True) / (rows.norm(dim=1, keepdim=True) + 1e-10))
        direction.append(d)
    return direction


def coordinates(span: float, points: int) -> list[float]:
    """`points` evenly spaced values from -span to span; the middle one is exactly 0 when `points` is odd."""
    if points < 2:
        raise UserError(f"a landscape needs at least 2 points per direction, got {points}")
    return [span * (2 * i - (points - 1)) / (points - 1) for i in range(points)]


@torch.no_grad()
def surface(
    model: nn.Module, batches: Batches, directions: Sequence[list[Tensor]], points: Sequence[Sequence[float]]
) -> tuple[list[float], list[float]]:
    """Loss and accuracy at w + sum_i c_i d_i for each tuple c in `points`; w is restored bitwise after."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    losses, accuracies = [], []
    try:
        for point in points:
            torch._foreach_copy_(params, saved)
            for direction, c in zip(directions, point, strict=True):
                torch._foreach_add_(params, direction, alpha=c)
            loss, accuracy = loss_and_accuracy(model, batches)
            losses.append(loss)
            accuracies.append(accuracy)
    finally:
        torch._foreach_copy_(params, saved)
    return losses, accuracies


def landscape(cfg: DictConfig, run: LoadedRun) -> dict:
    """The loss along one direction (`x`, `loss_1d`) and over the plane of two (`loss_2d[j][i]` at x_i, y_j)."""
    start = time.perf_counter()
    batches = split_batches(cfg, run.cfg.dataset, run.device)
    params = list(run.model.parameters())
    generator = torch.Generator().manual_seed(cfg.seed)
    first, second = (filter_normalised_direction(params, generator) for _ in range(2))
    line = coordinates(cfg.span, cfg.points_1d)
    grid = coordinates(cfg.span, cfg.points_2d)
    with full_fp32():
        loss_1d, acc_1d = surface(run.model, batches, [first], [(x,) for x in line])
        plane = [(x, y) for y in grid for x in grid]
        loss_2d, acc_2d = surface(run.model, batches, [first, second], plane)
    n = len(grid)
    return {
        "x": line,
        "loss_1d": loss_1d,
        "acc_1d": acc_1d,
        "grid": grid,
        "loss_2d": [loss_2d[j * n : (j + 1) * n] for j in range(n)],
        "acc_2d": [acc_2d[j * n : (j + 1) * n] for j in range(n)],
        "examples": sum(len(y) for _, y in batches),
        "seconds": time.perf_counter() - start,
    }
