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

log = logging.getLogger("lesam")

# analysis name (configs/analysis/<name>.yaml) -> function of (its config, the loaded run) -> result
ANALYSES: dict[str, Callable[[DictConfig, LoadedRun], dict]] = {
    "accuracy": accuracy,
    "pgd": pgd,
    "hessian": hessian,
    "lpf": lpf,
    "landscape": landscape,
}


def result_path(checkpoint: Path, name: str) -> Path:
    """Where an analysis of `checkpoint` writes: <run folder>/<name>.json."""
    return Path(checkpoint).parent / f"{name}.json"


def run_analysis(cfg: DictConfig) -> dict:
    """Load `cfg.checkpoint`, run `cfg.analysis`, write and return its result."""
    name = cfg.analysis.name
    if name not in ANALYSES:
        raise UserError(f"unknown analysis '{name}'; choose one of: {', '.join(ANALYSES)}")
    run = load_run(Path(cfg.checkpoint), cfg.device)
    result = {"analysis": OmegaConf.to_container(cfg.analysis, resolve=True), "checkpoint": str(run.checkpoint)}
    result |= ANALYSES[name](cfg.analysis, run)
    path = result_path(run.checkpoint, name)
    write_json(path, result)
    log.info("%s -> %s", name, path)
    return result
