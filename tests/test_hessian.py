"""Hessian eigenvalues and trace against Hessians known exactly: a quadratic, linear models and a tiny MLP."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.func import functional_call

from conftest import CONFIGS, ROOT, compose_config, smoke_overrides
from lesam.analysis.hessian import (
    HessianOperator,
    eigenpairs,
    hessian,
    hutchinson_trace,
    model_operator,
    residual_norms,
    top_eigenvalues,
)
from lesam.analysis.lanczos import lanczos
from lesam.analysis.loaded_run import LoadedRun
from lesam.core.errors import UserError
from lesam.engine.run import run
from lesam.models import build_model

REL = 1e-3


def by_magnitude(values):
    return sorted(values, key=abs, reverse=True)


def quadratic(matrix: np.ndarray) -> HessianOperator:
    """L(w) = w^T A w / 2 at a random w: its Hessian is A everywhere."""
    a = torch.tensor(matrix, dtype=torch.float64)
    w = torch.randn(len(a), dtype=torch.float64, requires_grad=True)
    return HessianOperator([w], [lambda: 0.5 * w @ a @ w], [1.0])


def rotated(spectrum, seed=0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(spectrum), len(spectrum))))
    return q @ np.diag(spectrum) @ q.T


def test_deflation_finds_the_top_three_of_a_quadratic_in_order():
    spectrum = [10.0, 7.0, 5.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.2, -0.3, -1.0]
    hvp = quadratic(rotated(spectrum))
    values, _, iterations = top_eigenvalues(hvp, 3, max_iter=500, tol=1e-10, generator=torch.Generator().manual_seed(0))
    assert values == pytest.approx([10.0, 7.0, 5.0], rel=REL)
    assert all(1 < n <= 500 for n in iterations)


def test_hutchinson_trace_of_a_quadratic():
    # Rademacher probes err only through the off-diagonal entries: with these (about 0.01 each),
    # 500 probes leave a standard error of about 1e-4 of the trace.
    rng = np.random.default_rng(1)
    diagonal = np.arange(1.0, 13.0)
    noise = np.triu(rng.choice([-0.01, 0.01], size=(12, 12)), 1)
    matrix = np.diag(diagonal) + noise + noise.T
    samples = hutchinson_trace(quadratic(matrix), max_iter=500, tol=0.0, generator=torch.Generator().manual_seed(0))
    assert len(samples) == 500
    assert np.mean(samples) == pytest.approx(np.trace(matrix), rel=REL)


def test_linear_regression_with_orthogonal_design():
    """0.5 * mean (Xw - y)^2 has Hessian X^T X / n: diagonal here, so every probe gives the exact trace."""
    rng = np.random.default_rng(2)
    n, d = 40, 8
    basis, _ = np.linalg.qr(rng.normal(size=(n, d)))
    scales = np.array([9.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5])
    x = torch.tensor(basis * scales, dtype=torch.float32)
    y = torch.randn(n)
    model = torch.nn.Linear(d, 1, bias=False)
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]  # unequal batches: the operator weights them by size
    hvp = model_operator(model, batches, criterion=lambda out, target: 0.5 * F.mse_loss(out.squeeze(-1), target))
    exact = scales**2 / n
    generator = torch.Generator().manual_seed(0)
    values, _, _ = top_eigenvalues(hvp, 3, max_iter=500, tol=1e-9, generator=generator)
    assert values == pytest.approx(exact[:3].tolist(), rel=REL)
    samples = hutchinson_trace(hvp, max_iter=100, tol=1e-3, generator=generator)
    assert np.mean(samples) == pytest.approx(exact.sum(), rel=REL)


def softmax_regression_hessian(model: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The cross-entropy Hessian of a linear classifier in (weight row-major, bias): mean of J^T (diag p - p p^T) J."""
    w, b = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    classes, features = w.shape
    total = np.zeros((classes * features + classes,) * 2)
    for xi in x.double().numpy():
        logits = w @ xi + b
        p = np.exp(logits - logits.max())
        p /= p.sum()
        jacobian = np.hstack([np.kron(np.eye(classes), xi), np.eye(classes)])
        total += jacobian.T @ (np.diag(p) - np.outer(p, p)) @ jacobian
    return total / len(x)


def test_softmax_regression_eigenvalues_and_trace():
    torch.manual_seed(3)
    model = torch.nn.Linear(5, 3)
    x, y = torch.randn(12, 5) * 2, torch.randint(3, (12,))
    hvp = model_operator(model, [(x[:7], y[:7]), (x[7:], y[7:])])
    exact = softmax_regression_hessian(model, x, y)
    spectrum = by_magnitude(np.linalg.eigvalsh(exact))
    values, _, _ = top_eigenvalues(hvp, 3, max_iter=1000, tol=1e-9, generator=torch.Generator().manual_seed(0))
    assert values == pytest.approx(spectrum[:3], rel=REL)
    # the operator's own trace, read off the basis vectors, is the closed form's
    diagonal = [hvp(torch.eye(hvp.dim)[i])[i].item() for i in range(hvp.dim)]
    assert sum(diagonal) == pytest.approx(np.trace(exact), rel=REL)


def test_more_eigenvalues_than_parameters_is_a_user_error():
    with pytest.raises(UserError, match="top_k"):
        top_eigenvalues(quadratic(np.eye(3)), 4, max_iter=5, tol=1e-3, generator=torch.Generator())
    with pytest.raises(UserError, match="top_k"):  # ARPACK needs k below the dimension
        lanczos(quadratic(np.eye(3)), torch.ones(3, dtype=torch.float64), 3, max_products=50, tol=1e-3)


def tiny_mlp() -> tuple[torch.nn.Module, list, np.ndarray]:
    """A 51-parameter MLP, its data in two batches, and its Hessian's eigenvalues, largest first, from the whole
    Hessian formed in float64."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    x, y = torch.randn(32, 4), torch.randint(3, (32,))
    shapes = {name: p.shape for name, p in model.named_parameters()}
    reference = copy.deepcopy(model).double()

    def loss(flat):
        weights = dict(zip(shapes, flat.split([s.numel() for s in shapes.values()]), strict=True))
        weights = {name: w.view(shapes[name]) for name, w in weights.items()}
        return F.cross_entropy(functional_call(reference, weights, (x.double(),)), y)

    flat = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    exact = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat).numpy())[::-1]
    return model, [(x[:20], y[:20]), (x[20:], y[20:])], exact


def test_lanczos_top_k_are_the_exact_largest_eigenvalues_whatever_the_seed():
    """The analysis's defaults (method=lanczos, its tol) on a float32 model, against the Hessian formed exactly."""
    model, batches, exact = tiny_mlp()
    assert exact[-1] < -0.2  # an indefinite Hessian: its largest eigenvalues are not its largest in magnitude
    hvp = model_operator(model, batches)
    cfg = OmegaConf.load(CONFIGS / "analysis" / "hessian.yaml")
    cfg.top_k = 5
    assert cfg.method == "lanczos"
    found = []
    for seed in (0, 1):
        values, vectors, products = eigenpairs(cfg, hvp, torch.Generator().manual_seed(seed))
        assert values == pytest.approx(exact[:5].tolist(), rel=1e-4)
        assert values == sorted(values, reverse=True) and 0 < products["products"] <= 5 * cfg.max_iter
        residuals = residual_norms(hvp, values, vectors)
        assert all(r <= cfg.tol * abs(v) for r, v in zip(residuals, values, strict=True)), residuals
        found.append(values)
    assert found[0] == pytest.approx(found[1], rel=1e-4)


def test_power_iteration_takes_a_large_negative_eigenvalue_for_the_top_lanczos_does_not():
    spectrum = [4.0, 3.0, 2.0, 1.0, 0.5, 0.2, -10.0, -9.0, -0.5, -0.1]
    hvp = quadratic(rotated(spectrum))
    power, _, _ = top_eigenvalues(hvp, 3, max_iter=500, tol=1e-10, generator=torch.Generator().manual_seed(0))
    assert power == pytest.approx([-10.0, -9.0, 4.0], rel=REL)  # PyHessian's "top 3"
    start = torch.randn(len(spectrum), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values, vectors, _ = lanczos(hvp, start, 3, max_products=300, tol=1e-8)
    assert values == pytest.approx([4.0, 3.0, 2.0], rel=1e-6)
    assert max(residual_norms(hvp, values, vectors)) < 1e-6


def test_lanczos_out_of_products_is_a_user_error():
    hvp = quadratic(rotated(np.linspace(-1.0, 1.0, 40)))
    with pytest.raises(UserError, match="did not reach tol=1e-12 within 25 Hessian-vector products; raise analysis"):
        lanczos(hvp, torch.ones(40, dtype=torch.float64), 3, max_products=25, tol=1e-12)


def test_hessian_analysis_of_a_small_cnn_runs_in_eval_mode(tmp_path):
    run_cfg = compose_config(smoke_overrides(tmp_path, "model=small_cnn", "model.width=4"))
    model = build_model(run_cfg.model, 10, 3, 32).eval()
    running = [b.clone() for b in model.buffers()]
    cfg = OmegaConf.load(CONFIGS / "analysis" / "hessian.yaml")
    cfg.merge_with({"top_k": 2, "trace_max_iter": 5, "batch_size": 16, "num_batches": 2})
    result = hessian(cfg, LoadedRun(tmp_path, run_cfg, model, None, torch.device("cpu")))
    assert result["method"] == "lanczos" and result["eigenvalues"][0] >= result["eigenvalues"][1]
    assert all(r <= cfg.tol * abs(v) for r, v in zip(result["residuals"], result["eigenvalues"], strict=True))
    assert result["examples"] == 32 and result["trace_samples"] <= 5
    assert all(torch.equal(a, b) for a, b in zip(running, model.buffers(), strict=True))  # BN statistics untouched


def test_analyze_py_writes_hessian_json_next_to_the_checkpoint(tmp_path):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", "model.hidden=[8]", "trainer.epochs=1"))
    run(cfg, folder=tmp_path / "run")
    command = [sys.executable, "analyze.py", "analysis=hessian", f"checkpoint={tmp_path / 'run' / 'last.pt'}"]
    command += ["analysis.top_k=2", "analysis.max_iter=100", "analysis.num_batches=1", "device=cpu"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "run" / "hessian.json").read_text())
    assert written["analysis"]["name"] == "hessian" and written["method"] == "lanczos"
    assert len(written["eigenvalues"]) == 2 and written["eigenvalues"][0] >= written["eigenvalues"][1]
    assert len(written["residuals"]) == 2
    assert written["examples"] == 64 and written["parameters"] == 3072 * 8 + 8 + 8 * 10 + 10
