"""What a table's runs cost, in GPU-hours, estimated from the paper's own times where it gives them.

The paper's Table 6 times one CIFAR epoch (50k images) on one RTX 5090 for SAM and LE-SAM with
ResNet-18, WRN-28-10 and PyramidNet-110. A run's estimate is that time times its epochs, every other
two-pass method taken at SAM's time and SGD (one pass) at half of it. A table with a run outside
those settings (other data, models or step counts) has no estimate: the paper reports no times for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from lesam.report.paper import paper_tables
from lesam.report.plan import Composer, Run
from lesam.report.tables import CIFAR, CIFAR_BACKBONES

ONE_PASS = ("sgd",)
LE_SAM = ("lesam", "lesam_plus")  # the same two passes; LE-SAM+ adds a few vector operations


def seconds_per_epoch(model: str, optimizer: str) -> float | None:
    """The paper's seconds per CIFAR epoch for `model` trained with `optimizer`; None if it has no time."""
    if model not in CIFAR_BACKBONES:
        return None
    times = paper_tables()["table6"]
    method = "LE-SAM" if optimizer in LE_SAM else "SAM"
    value = times.value("Time per epoch", f"{CIFAR_BACKBONES[model]} {method}", "s/epoch")
    if value is None or value.mean is None:
        return None
    return value.mean / 2 if optimizer in ONE_PASS else value.mean


def run_hours(cfg: DictConfig) -> float | None:
    """The estimated GPU-hours of one whole run of `cfg`, or None where the paper gives no time for it."""
    if cfg.dataset.name not in CIFAR or cfg.trainer.get("steps") is not None:
        return None
    seconds = seconds_per_epoch(cfg.model.name, cfg.optimizer.name)
    return None if seconds is None else seconds * cfg.trainer.epochs / 3600


def gpu_hours(planned: Sequence[Run], composer: Composer) -> float | None:
    """The estimated GPU-hours of the runs, or None where the paper gives no time for one of them."""
    total = 0.0
    for run in planned:  # composed without the seed, which changes no cost: one config per cell
        hours = run_hours(composer.compose((*run.overrides, *run.extra)))
        if hours is None:
            return None
        total += hours
    return total


def cost_note(planned: Sequence[Run], composer: Composer) -> str:
    """'about 430 GPU-hours', or why there is no estimate."""
    hours = gpu_hours(planned, composer)
    return "GPU-hours not estimated (no time in the paper)" if hours is None else f"about {hours:.0f} GPU-hours"
