"""analyze.py: a checkpoint's analysis is written as JSON next to it."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_config, smoke_overrides
from lesam.engine.run import run


def analyze(*overrides):
    return subprocess.run(
        [sys.executable, "analyze.py", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished two-epoch run of a small MLP: its folder and final.json."""
    root = tmp_path_factory.mktemp("trained")
    cfg = compose_config(smoke_overrides(root, "model=mlp", "model.hidden=[16]", "optimizer=lesam"))
    cfg.trainer.epochs = 2
    return root / "run", run(cfg, folder=root / "run")


def error_line(result):
    """The one stderr line of a user mistake (exit 2)."""
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_accuracy_of_a_checkpoint_matches_the_run(trained):
    folder, final = trained
    result = analyze("analysis=accuracy", f"checkpoint={folder / 'last.pt'}", "device=cpu")
    assert result.returncode == 0, result.stderr
    written = json.loads((folder / "accuracy.json").read_text())
    assert abs(written["test_acc"] - final["test_acc"]) < 1e-9
    assert written["analysis"]["name"] == "accuracy"


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible: device=cuda is no mistake")


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["analysis.batch_size=0"], "error: analysis.batch_size=0 must be an integer >= 1"),
        (["analysis.batchsize=8"], "`python analyze.py --cfg job` lists the keys"),
        (["device=cpu", "analysis.precision=fp16"], "error: analysis.precision=fp16 needs a CUDA device"),
        pytest.param(["device=cuda"], "error: device=cuda but no CUDA device is visible; use device=", marks=NO_CUDA),
    ],
)
def test_analyze_names_its_own_command_and_keys(trained, overrides, line):
    folder, _ = trained
    assert line in error_line(analyze(f"checkpoint={folder / 'last.pt'}", *overrides))


def test_missing_checkpoint_gives_one_line(tmp_path):
    for overrides in (["analysis=accuracy"], ["analysis=accuracy", f"checkpoint={tmp_path}/nothing.pt"]):
        assert "checkpoint" in error_line(analyze(*overrides))
