"""Multiruns: every job's config is checked before the first trains, a job that fails does not stop the
others, and the SLURM launcher without SLURM is one line."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK_RUN as QUICK
from conftest import run_command


def multirun(out: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_command([sys.executable, "train.py", "-m", f"output_root={out}", *QUICK, *overrides], env)


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [x for x in result.stderr.splitlines() if x.strip()]


@pytest.mark.parametrize(
    "overrides,lines",
    [
        (
            ["optimizer=sam", "optimizer.rho=0.05,-1,0.1"],
            ["job 1 (optimizer.rho=-1): optimizer.rho=-1 must be > 0; SAM's usual values are 0.05 to 0.2"],
        ),
        (
            ["optimizer=sgd", "optimizer.lr=0.1,-2", "optimizer.momentum=0.9,1.5"],
            [
                "job 1 (optimizer.lr=0.1 optimizer.momentum=1.5): optimizer.momentum=1.5 must be in [0, 1)",
                "job 2 (optimizer.lr=-2 optimizer.momentum=0.9): optimizer.lr=-2 must be > 0",
                "job 3 (optimizer.lr=-2 optimizer.momentum=1.5): optimizer.lr=-2 must be > 0",
            ],
        ),
    ],
)
def test_a_sweep_with_a_bad_job_trains_nothing(tmp_path, overrides, lines):
    result = multirun(tmp_path / "out", *overrides)
    assert result.returncode == 2, result.stderr
    assert stderr_lines(result) == [f"error: {line}" for line in lines], result.stderr
    assert not (tmp_path / "out").exists()


def test_a_job_that_fails_while_training_does_not_stop_the_others(tmp_path):
    """Job 1 diverges (a non-finite loss stops it); jobs 0 and 2 still train, and the sweep exits 1."""
    out = tmp_path / "out"
    result = multirun(out, "optimizer=sgd", "optimizer.lr=0.1,1e30,0.05", "trainer.nonfinite_window=1")
    assert result.returncode == 1, result.stderr
    (line,) = stderr_lines(result)
    assert line.startswith("error: job 1 (optimizer.lr=1e+30) failed: ") and "non-finite" in line, result.stderr
    finished = sorted(p.parent.name for p in out.glob("*/final.json"))
    assert len(finished) == 2, result.stdout
    assert "job 1 (optimizer.lr=1e+30) failed" in result.stdout  # said when it happens, too


def test_slurm_launcher_without_sbatch_is_one_line(tmp_path):
    no_slurm = {"PATH": str(Path(sys.executable).parent)}  # sbatch is not on this PATH, even where SLURM is
    result = multirun(tmp_path / "out", "hydra/launcher=slurm_cpu", env=no_slurm)
    assert result.returncode == 2, result.stderr
    assert stderr_lines(result) == [
        "error: sbatch not found: this machine has no SLURM; drop hydra/launcher=slurm_cpu to run here"
    ], result.stderr
    assert not (tmp_path / "out").exists()
