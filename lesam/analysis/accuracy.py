"""Test loss and accuracy of a checkpoint, recomputed from its weights."""

from __future__ import annotations

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from lesam.analysis.loaded_run import LoadedRun
from lesam.data.workers import usable_workers
from lesam.engine.evaluation import evaluate
from lesam.engine.precision import autocast, resolve_precision


def accuracy(cfg: DictConfig, run: LoadedRun) -> dict:
    """`test_loss` and `test_acc` (percent) over the run's test split."""
    loader = DataLoader(
        run.data.test, batch_size=cfg.batch_size, num_workers=usable_workers(cfg.workers, "analysis.workers")
    )
    precision = resolve_precision(cfg.precision, run.device, key="analysis.precision")
    return evaluate(run.model, loader, run.device, autocast(precision, run.device))
