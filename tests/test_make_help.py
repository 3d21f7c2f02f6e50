"""`make help`: each table target says how many runs it launches and what they cost, and how to list them first."""

import shutil
import subprocess

import pytest

from conftest import ROOT
from lesam.report.cost import gpu_hours
from lesam.report.plan import composer, runs
from lesam.report.tables import TABLES


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_each_table_target_states_its_runs_and_gpu_hours():
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    lines = {line.split()[1]: line for line in shown.splitlines() if line.startswith("  make ")}
    with composer() as c:
        for name, table in TABLES.items():
            planned = runs(table)
            if not planned:
                assert "no runs" in lines[name], lines[name]
                continue
            hours = gpu_hours(planned, c)
            cost = "GPU-hours not estimated" if hours is None else f"about {hours:.0f} GPU-hours"
            assert f"({len(planned)} runs" in lines[name] and cost in lines[name], (lines[name], cost)
    assert "make tableN DRY=1" in shown
