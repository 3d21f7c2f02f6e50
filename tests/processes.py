"""Helpers of the tests that launch several processes: torchrun, srun-like tasks, one-process references."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from conftest import ROOT, TINY, compose_config
from lesam.core.run_id import run_id
from lesam.engine.run import run

RUN = [  # a few steps of a small MLP: 96 images in global batches of 16 (debug=smoke's), two epochs
    "debug=smoke",
    "dataset.num_train=96",
    "model=mlp",
    *TINY["mlp"],
    "trainer.epochs=2",  # two epochs: the sampler's per-epoch shuffle is part of what must agree
]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]


def worker_env(**extra: str) -> dict:
    """The environment of a launched process: one thread each (two cores), no launcher variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return env | {"OMP_NUM_THREADS": "1"} | extra


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """torchrun --standalone --nproc_per_node=2 train.py <args>, to completion."""
    command = [*TORCHRUN, *args]
    return subprocess.run(command, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=timeout)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """The model state in a run folder's last.pt."""
    return torch.load(folder / "last.pt", weights_only=True)["trainer"]["model"]


def single_process(root: Path, *overrides: str) -> tuple[DictConfig, Path]:
    """A run of RUN plus `overrides` by one process (this one), in root/<run id>."""
    cfg = compose_config([*RUN, *overrides, f"output_root={root}"])
    folder = root / run_id(cfg)
    run(cfg, folder=folder)
    return cfg, folder
