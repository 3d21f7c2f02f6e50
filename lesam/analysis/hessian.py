"""The Hessian's top eigenvalues and its trace (Hutchinson), on Hessian-vector products.

All work on Hessian-vector products from autograd (double backward), so H is never formed. The top
eigenvalues come from Lanczos (lesam.analysis.lanczos: the largest, converged to a residual
tolerance) or, as in PyHessian and the paper, from power iteration with deflation:
Yao, Gholami, Keutzer, Mahoney. "PyHessian: Neural Networks Through the Lens of the Hessian." 2020.
Power iteration finds the eigenvalues of largest magnitude, and its stopping rule is PyHessian's: a
relative change below `tol` between two consecutive estimates, or `max_iter` products; so is the trace's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from lesam.analysis.batches import split_batches
from lesam.analysis.lanczos import lanczos
from lesam.analysis.loaded_run import LoadedRun
from lesam.core.errors import UserError
from lesam.data.fixed_batches import Batches
from lesam.engine.precision import full_fp32

RELATIVE_FLOOR = 1e-6  # PyHessian's guard against dividing by an estimate near 0
METHODS = ("lanczos", "power")


class HessianOperator:
    """v -> H v, with H the Hessian of a weighted mean of losses (one per batch) in `params`.

    Vectors are flat: one tensor with as many entries as the parameters together.
    """

    def __init__(
        self, params: Sequence[Tensor], losses: Sequence[Callable[[], Tensor]], weights: Sequence[float]
    ) -> None:
        self.params, self.losses, self.weights = list(params), list(losses), list(weights)
        self.dim = sum(p.numel() for p in self.params)

    def __call__(self, v: Tensor) -> Tensor:
        """H v, accumulated batch by batch so that only one batch's graph is alive at a time."""
        pieces = [x.view_as(p) for x, p in zip(v.split([p.numel() for p in self.params]), self.params, strict=True)]
        total = torch.zeros_like(v)
        for loss, weight in zip(self.losses, self.weights, strict=True):
            with torch.enable_grad():
                grads = torch.autograd.grad(loss(), self.params, create_graph=True, materialize_grads=True)
                # a gradient that does not depend on the weights (a linear term) has no second derivative
                live = [i for i, g in enumerate(grads) if g.requires_grad]
                hv = torch.autograd.grad(
                    [grads[i] for i in live], self.params, [pieces[i] for i in live], materialize_grads=True
                )
            total.add_(torch.cat([h.reshape(-1) for h in hv]), alpha=weight)
        return total


def model_operator(model: nn.Module, batches: Batches, criterion: Callable = F.cross_entropy) -> HessianOperator:
    """The operator of `model`'s mean loss over `batches` (each weighted by its size) in its trainable weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(len(y) for _, y in batches)
    losses = [lambda x=x, y=y: criterion(model(x), y) for x, y in batches]
    return HessianOperator(params, losses, [len(y) / total for _, y in batches])


def _normalised(v: Tensor) -> Tensor:
    return v / (v.norm() + 1e-12)


def _project_out(v: Tensor, basis: list[Tensor]) -> Tensor:
    """v without its components along the orthonormal `basis` (Gram-Schmidt)."""
    for b in basis:
        v = v - torch.dot(v, b) * b
    return v


def _converged(new: float, old: float | None, tol: float) -> bool:
    return old is not None and abs(new - old) / (abs(old) + RELATIVE_FLOOR) < tol


def top_eigenvalues(
    hvp: HessianOperator, k: int, max_iter: int, tol: float, generator: torch.Generator
) -> tuple[list[float], list[Tensor], list[int]]:
    """PyHessian's top k: the eigenvalues of largest magnitude in the order found, their eigenvectors, and the
    products each took.

    Power iteration on H restricted to the complement of the eigenvectors already found
    (deflation by projection), each started from a random Gaussian vector.
    """
    if not 1 <= k <= hvp.dim:
        raise UserError(f"top_k={k} must be between 1 and the number of parameters ({hvp.dim})")
    device = hvp.params[0].device
    values, iterations, basis = [], [], []
    for _ in range(k):
        start = torch.randn(hvp.dim, generator=generator, device=device)
        value, vector, products = _power_iteration(hvp, start, basis, max_iter, tol)
        values.append(value)
        iterations.append(products)
        basis.append(vector)
    return values, basis, iterations


def _power_iteration(
    hvp: HessianOperator, v: Tensor, basis: list[Tensor], max_iter: int, tol: float
) -> tuple[float, Tensor, int]:
    """The dominant eigenpair of H on the complement of `basis`, and the products it took."""
    value, products = None, 0
    while products < max_iter:
        products += 1
        v = _normalised(_project_out(v, basis))
        hv = hvp(v)
        new = torch.dot(hv, v).item()
        v = _normalised(hv)
        converged = _converged(new, value, tol)
        value = new
        if converged:
            break
    return value, _normalised(_project_out(v, basis)), products


def hutchinson_trace(hvp: HessianOperator, max_iter: int, tol: float, generator: torch.Generator) -> list[float]:
    """Samples z^T H z with Rademacher z (E = trace H) until their running mean settles."""
    device = hvp.params[0].device
    samples: list[float] = []
    mean = None
    for _ in range(max_iter):
        z = torch.randint(0, 2, (hvp.dim,), generator=generator, device=device).float().mul_(2).sub_(1)
        samples.append(torch.dot(hvp(z), z).item())
        new = sum(samples) / len(samples)
        done = _converged(new, mean, tol)
        mean = new
        if done:
            break
    return samples


def residual_norms(hvp: HessianOperator, values: list[float], vectors: list[Tensor]) -> list[float]:
    """||H v - lambda v|| of each eigenpair (v of unit length), one product each."""
    return [torch.linalg.vector_norm(hvp(v) - value * v).item() for value, v in zip(values, vectors, strict=True)]


def eigenpairs(cfg: DictConfig, hvp: HessianOperator, generator: torch.Generator) -> tuple[list, list, dict]:
    """The top `cfg.top_k` eigenvalues by `cfg.method`, their eigenvectors, and the products they took."""
    if cfg.method == "power":
        values, vectors, iterations = top_eigenvalues(hvp, cfg.top_k, cfg.max_iter, cfg.tol, generator)
        return values, vectors, {"products": sum(iterations), "iterations": iterations}
    like = hvp.params[0]
    start = torch.randn(hvp.dim, generator=generator, device=like.device, dtype=like.dtype)
    values, vectors, products = lanczos(hvp, start, cfg.top_k, cfg.top_k * cfg.max_iter, cfg.tol, cfg.ncv)
    return values, vectors, {"products": products}


def hessian(cfg: DictConfig, run: LoadedRun) -> dict:
    """Top-`top_k` eigenvalues with their residuals, and the trace of the loss Hessian over fixed batches
    (BatchNorm in eval mode)."""
    if cfg.method not in METHODS:
        raise UserError(f"analysis.method={cfg.method} is not one of: {', '.join(METHODS)}")
    for key in ("max_iter", "trace_max_iter"):
        if cfg[key] < 1:
            raise UserError(f"analysis.{key}={cfg[key]} must be >= 1")
    start = time.perf_counter()
    batches = split_batches(cfg, run.cfg.dataset, run.device)
    hvp = model_operator(run.model.eval(), batches)
    generator = torch.Generator(run.device).manual_seed(cfg.seed)
    with full_fp32():
        eigenvalues, eigenvectors, products = eigenpairs(cfg, hvp, generator)
        residuals = residual_norms(hvp, eigenvalues, eigenvectors)
        del eigenvectors  # as large as top_k copies of the weights
        samples = hutchinson_trace(hvp, cfg.trace_max_iter, cfg.trace_tol, generator)
    trace = sum(samples) / len(samples)
    spread = math.sqrt(sum((s - trace) ** 2 for s in samples) / (len(samples) - 1)) if len(samples) > 1 else None
    return {
        "method": cfg.method,
        "eigenvalues": eigenvalues,
        "residuals": residuals,
        **products,
        "trace": trace,
        "trace_std_error": spread / math.sqrt(len(samples)) if spread is not None else None,
        "trace_samples": len(samples),
        "examples": sum(len(y) for _, y in batches),
        "parameters": hvp.dim,
        "seconds": time.perf_counter() - start,
    }
