"""Checks of a composed config's values, run before anything is built or written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lesam.engine.errors import UserError

_MISSING = object()


def _choice(*options: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options), f"must be one of {', '.join(options)}"


# key -> (test, what the value must be, optional hint); keys absent from a config are skipped
RULES: dict[str, tuple[Callable[[Any], bool], str] | tuple[Callable[[Any], bool], str, str]] = {
    "seed": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
    "optimizer.lr": (lambda v: v > 0, "must be > 0"),
    "optimizer.momentum": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optimizer.weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "optimizer.rho": (lambda v: v > 0, "must be > 0", "SAM's usual values are 0.05 to 0.2"),
    "optimizer.delta": (lambda v: v >= 0, "must be >= 0", "the paper uses 0.3 to 0.5"),
    "optimizer.rho_max": (lambda v: v is None or v > 0, "must be > 0 or null (no clip)"),
    "optimizer.eps": (lambda v: v > 0, "must be > 0"),
    "optimizer.alpha": (lambda v: v >= 0, "must be >= 0", "LE-SAM+ uses 0.5 to 0.6"),
    "optimizer.grad_clip": (lambda v: v is None or v > 0, "must be > 0 or null"),
    "optimizer.delta_warmup_epochs": (lambda v: v is None or v >= 0, "must be >= 0 or null"),
    "optimizer.anneal_start_epoch": (lambda v: v is None or v >= 0, "must be >= 0 or null"),
    "optimizer.start_epoch": (lambda v: v is None or v >= 0, "must be >= 0 or null"),
    "optimizer.eta": (lambda v: v >= 0, "must be >= 0", "ASAM uses 0.01"),
    "optimizer.beta": (lambda v: 0 < v <= 1, "must be in (0, 1]", "ESAM uses 0.5 to 0.6; 1 perturbs every tensor"),
    "optimizer.gamma": (lambda v: 0 < v <= 1, "must be in (0, 1]", "ESAM uses 0.5; 1 keeps the whole batch"),
    "optimizer.sigma": (lambda v: v >= 0, "must be >= 0", "F-SAM uses 1"),
    "optimizer.lmbda": (lambda v: 0 <= v < 1, "must be in [0, 1)", "F-SAM uses 0.6 to 0.95"),
    "optimizer.rho_min": (lambda v: v >= 0, "must be >= 0"),
    "optimizer.freq": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "optimizer.power_iters": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "schedule.warmup_epochs": (lambda v: v >= 0, "must be >= 0"),
    "trainer.epochs": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.max_steps": (lambda v: v is None or (isinstance(v, int) and v >= 1), "must be an integer >= 1 or null"),
    "trainer.batch_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.eval_batch_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.eval_every": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.workers": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
    "trainer.label_smoothing": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "trainer.device": _choice("auto", "cpu", "cuda"),
    "trainer.precision": _choice("auto", "bf16", "fp16", "fp32"),
    "trainer.bn_second_pass": _choice("update", "freeze"),
}


def validate(cfg: DictConfig) -> None:
    """Raise a UserError naming the first key whose value is out of range or of the wrong type."""
    for key, (test, requirement, *hint) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        try:
            ok = bool(test(value))
        except TypeError:
            ok = False
        if not ok:
            advice = f"; {hint[0]}" if hint else ""
            raise UserError(f"{key}={value!r} {requirement}{advice}")
