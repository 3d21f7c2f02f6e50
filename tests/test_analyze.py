"""analyze.py: a checkpoint's analysis is written as JSON next to it."""

import json
import subprocess
import sys

from conftest import ROOT, compose_config, smoke_overrides
from lesam.engine.run import run


def analyze(*overrides):
    return subprocess.run(
        [sys.executable, "analyze.py", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_accuracy_of_a_checkpoint_matches_the_run(tmp_path):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", "model.hidden=[16]", "optimizer=lesam"))
    cfg.trainer.epochs = 2
    final = run(cfg, folder=tmp_path / "run")
    result = analyze("analysis=accuracy", f"checkpoint={tmp_path / 'run' / 'last.pt'}", "device=cpu")
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "run" / "accuracy.json").read_text())
    assert abs(written["test_acc"] - final["test_acc"]) < 1e-9
    assert written["analysis"]["name"] == "accuracy"


def test_missing_checkpoint_gives_one_line(tmp_path):
    for overrides in (["analysis=accuracy"], ["analysis=accuracy", f"checkpoint={tmp_path}/nothing.pt"]):
        result = analyze(*overrides)
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert result.returncode == 2 and len(lines) == 1 and "checkpoint" in lines[0], result.stderr
