"""Run one analysis of a checkpoint and write its result as JSON next to the checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lesam.analysis.accuracy import accuracy
from lesam.analysis.hessian import hessian
from lesam.analysis.landscape import landscape
from lesam.analysis.loaded_run import LoadedRun, load_run
from lesam.analysis.lpf import lpf
from lesam.analysis.pgd import pgd
from lesam.core.errors import UserError
from lesam.core.files import write_json
from lesam.engine.validate import Rules, check_ranges, choice

log = logging.getLogger("lesam")

# analysis name (configs/analysis/<name>.yaml) -> function of (its config, the loaded run) -> result
ANALYSES: dict[str, Callable[[DictConfig, LoadedRun], dict]] = {
    "accuracy": accuracy,
    "pgd": pgd,
    "hessian": hessian,
    "lpf": lpf,
    "landscape": landscape,
}

_INT_1 = (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1")
# analyze.py's keys that an analysis config may hold; keys absent from the chosen analysis are skipped
ANALYSIS_RULES: Rules = {
    "device": choice("auto", "cpu", "cuda"),
    "analysis.batch_size": _INT_1,
    "analysis.num_batches": (lambda v: v is None or (isinstance(v, int) and v >= 1), "must be an integer >= 1 or null"),
    "analysis.workers": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
    "analysis.precision": choice("auto", "bf16", "fp16", "fp32"),
    "analysis.split": choice("train", "test"),
    "analysis.samples": _INT_1,
    "analysis.top_k": _INT_1,
    "analysis.max_iter": _INT_1,
    "analysis.trace_max_iter": _INT_1,
    "analysis.points_1d": _INT_1,
    "analysis.points_2d": _INT_1,
    "analysis.sigma": (lambda v: v >= 0, "must be >= 0"),
    "analysis.span": (lambda v: v > 0, "must be > 0"),
}


def result_path(checkpoint: Path, name: str) -> Path:
    """Where an analysis of `checkpoint` writes: <run folder>/<name>.json."""
    return Path(checkpoint).parent / f"{name}.json"


def run_analysis(cfg: DictConfig) -> dict:
    """Load `cfg.checkpoint`, run `cfg.analysis`, write and return its result."""
    name = cfg.analysis.name
    if name not in ANALYSES:
        raise UserError(f"unknown analysis '{name}'; choose one of: {', '.join(ANALYSES)}")
    check_ranges(cfg, ANALYSIS_RULES)
    run = load_run(Path(cfg.checkpoint), cfg.device)
    result = {"analysis": OmegaConf.to_container(cfg.analysis, resolve=True), "checkpoint": str(run.checkpoint)}
    result |= ANALYSES[name](cfg.analysis, run)
    path = result_path(run.checkpoint, name)
    write_json(path, result)
    log.info("%s -> %s", name, path)
    return result
