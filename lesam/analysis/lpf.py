"""LPF flatness of a trained checkpoint (`analyze.py analysis=lpf`); the measurement is lesam.engine.lpf."""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from lesam.analysis.batches import split_batches
from lesam.analysis.loaded_run import LoadedRun
from lesam.core.errors import UserError
from lesam.engine.evaluation import loss_and_accuracy
from lesam.engine.lpf import lpf_record
from lesam.engine.precision import full_fp32


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
