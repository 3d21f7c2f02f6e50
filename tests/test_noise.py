"""What a run prints: workers no more than the cores (no DataLoader warnings), and wandb's address, not its chatter."""

import logging
import subprocess
import sys
import warnings

import pytest

from conftest import ROOT, compose_config, smoke_overrides, without_hydra
from lesam.data.workers import usable_cores
from lesam.engine.trainer import Trainer


def test_workers_beyond_the_usable_cores_are_lowered_with_one_line(tmp_path, caplog):
    cores = usable_cores()
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", "model.hidden=[8]", f"trainer.workers={cores + 3}"))
    with caplog.at_level(logging.INFO, logger="lesam"):
        trainer = Trainer(without_hydra(cfg))
    assert trainer.train_loader.num_workers == trainer.test_loader.num_workers == cores
    lowered = [r.getMessage() for r in caplog.records if "lowered" in r.getMessage()]
    assert lowered == [f"trainer.workers={cores + 3} lowered to {cores}, the cores this process may use"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        next(iter(trainer.train_loader))
    assert not [w for w in caught if "worker" in str(w.message)], [str(w.message) for w in caught]


def printed(tmp_path, *overrides):
    """The non-empty lines a one-epoch run prints (stdout and stderr)."""
    result = subprocess.run(
        [sys.executable, "train.py", *smoke_overrides(tmp_path, "model=mlp", "model.hidden=[8]"), *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"WANDB_MODE": "offline", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    return [x for x in (result.stdout + result.stderr).splitlines() if x.strip()]


@pytest.mark.slow  # 11 s: a run with wandb offline
def test_wandb_prints_where_the_run_is_and_little_else(tmp_path):
    plain = printed(tmp_path / "plain", "trainer.epochs=1")
    logged = printed(tmp_path / "logged", "trainer.epochs=1", "logger=wandb", "logger.mode=offline")
    extra = [line for line in logged if line.startswith("wandb")]  # wandb's own lines start so, too
    assert len(logged) == len(plain) + 1, logged
    assert len(extra) == 1 and "wandb sync" in extra[0] and str(tmp_path / "logged") in extra[0], logged
