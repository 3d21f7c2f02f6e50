"""Shared fixtures: compose configs through Hydra's API, as train.py would."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from lesam.engine.run import run
from lesam.engine.run_folder import RunFolder
from lesam.engine.run_id import register_resolver

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TINY = {  # model overrides that keep a CIFAR backbone small enough for a CPU test
    "resnet18": ["model.width=4"],
    "wrn28_10": ["model.depth=10", "model.widen_factor=1"],
    "pyramidnet110": ["model.depth=8", "model.alpha=12"],
    "small_cnn": ["model.width=8"],
    "mlp": ["model.hidden=[32]"],
}


def compose_config(overrides: list[str]) -> DictConfig:
    """The config that `python train.py <overrides>` would run."""
    register_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def smoke_overrides(tmp: Path, *extra: str) -> list[str]:
    """A run on a few synthetic images, quiet and on the CPU."""
    return [
        "dataset=synthetic",
        "dataset.num_train=64",
        "dataset.num_test=32",
        "trainer.batch_size=16",
        "trainer.eval_batch_size=32",
        "trainer.workers=0",
        "trainer.device=cpu",
        "trainer.progress=false",
        f"output_root={tmp}",
        *extra,
    ]


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


def crash_after_first_checkpoint(cfg: DictConfig, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `cfg` in `folder` until its first checkpoint is written, then end it as a crash would."""
    save = RunFolder.save_checkpoint

    def save_then_crash(self, state):
        save(self, state)
        raise Crash

    monkeypatch.setattr(RunFolder, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        run(cfg, folder=folder)
    monkeypatch.setattr(RunFolder, "save_checkpoint", save)
