"""Shared fixtures: compose configs through Hydra's API, as train.py would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from lesam.core import paths
from lesam.core.run_folder import RunFolder
from lesam.engine.run import run
from lesam.report.plan import composer
from lesam.report.smoke import TINY_MODELS

ROOT, CONFIGS = paths.PROJECT, paths.CONFIGS  # subprocesses run train.py from the project folder
TINY = TINY_MODELS  # model overrides that keep each backbone small enough for a CPU test
QUICK_RUN = [  # one epoch of a tiny MLP on 32 images: a whole train.py run in seconds
    "debug=smoke",
    "dataset.num_train=32",
    "dataset.num_test=16",
    "model=mlp",
    "model.hidden=[8]",
    "trainer.epochs=1",
]


def run_command(argv: list[str], env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`argv` run from the project folder, its output captured as text (`env` added to this environment)."""
    environment = None if env is None else os.environ | env
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one stderr line of a user mistake (exit 2), or an assertion naming what came instead."""
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def compose_config(overrides: list[str]) -> DictConfig:
    """The config that `python train.py <overrides>` would run."""
    with composer() as c:
        return c.compose(overrides)


def smoke_overrides(tmp: Path, *extra: str) -> list[str]:
    """A run on a few synthetic images, quiet and on the CPU (configs/debug/smoke.yaml), written below `tmp`."""
    return ["debug=smoke", f"output_root={tmp}", *extra]


@pytest.fixture
def compose_cfg():
    """compose_config as a fixture."""
    return compose_config


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The job config alone (compose() has no HydraConfig to give run folders)."""
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


class Crash(Exception):
    """Stands for a process that dies."""


def crash_after_first_checkpoint(
    cfg: DictConfig, folder: Path, monkeypatch: pytest.MonkeyPatch, crash: type[BaseException] = Crash
) -> None:
    """Run `cfg` in `folder` until its first checkpoint is written, then end it with `crash` (an error, or a
    BaseException that nothing of the run reports, as for kill -9)."""
    save = RunFolder.save_checkpoint

    def save_then_crash(self, state):
        save(self, state)
        raise crash

    monkeypatch.setattr(RunFolder, "save_checkpoint", save_then_crash)
    with pytest.raises(crash):
        run(cfg, folder=folder)
    monkeypatch.setattr(RunFolder, "save_checkpoint", save)
