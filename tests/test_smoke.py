"""The smoke: every experiment preset runs 2 steps at tiny size, and every table renders end to end
from the run folders its runs wrote (the same code as `make smoke`)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from lesam.report.plan import missing_configs
from lesam.report.smoke import presets, smoke
from lesam.report.tables import TABLES


@pytest.mark.slow  # 20 s: every experiment preset trains
def test_every_preset_runs_two_steps(tmp_path):
    said = []
    report = smoke(tmp_path, tables=[], say=said.append)
    assert report.failed == {}
    assert sorted(report.presets) == presets() and len(presets()) >= 7
    assert [line.partition(":")[0] for line in said] == [f"preset {name}" for name in presets()]  # one per run
    assert all(line.split(": ")[1].startswith("2 steps, ") and line.endswith(" s") for line in said), said
    for folder in report.presets.values():
        final = json.loads((folder / "final.json").read_text())
        assert final["steps"] == 2 and 0 <= final["test_acc"] <= 100


LONG = {"table_dg", "table2", "table1"}  # DomainBed, ImageNet ResNets, 42 CIFAR runs; `make smoke` runs them too


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LONG else n for n in sorted(TABLES)])
def test_table_renders_end_to_end(name, tmp_path):
    assert missing_configs(TABLES[name]) == []
    said = []
    report = smoke(tmp_path, tables=[name], preset_names=[], say=said.append)
    assert report.failed == {} and report.skipped == {}
    n = len(TABLES[name].run_overrides()) if TABLES[name].seeds else 0
    assert [line.partition(":")[0] for line in said] == [f"{name} run {i}/{n}" for i in range(1, n + 1)]
    markdown, tex = report.tables[name]
    text = markdown.read_text()
    assert tex.read_text().startswith("%") and r"\end{table}" in tex.read_text()
    if TABLES[name].seeds:  # a table of runs: seed 0 of every run finished, every cell of ours has its value
        n = len(TABLES[name].run_overrides())
        assert f"Runs: {n} of {n} finished." in text
        assert "missing (" not in text, text
        assert all(f"### {block.title}: reproduction" in text for block in TABLES[name].blocks)
        assert "Student's t interval of the mean" in text
    else:
        assert "Runs: none" in text and "No measurements of ours" in text
        assert ": reproduction" not in text  # one timing per cell: no interval, no verdict


def section(text, title):
    """The cells of the pipe table under `### title`, one list per line."""
    lines = text.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def interval(text):
    """'15.62 [-182.91, 214.16]' -> (-182.91, 214.16)."""
    low, high = text.split("[")[1].rstrip("]").split(",")
    return float(low), float(high)


def test_two_seeds_give_every_cell_an_interval_and_a_verdict(tmp_path):
    report = smoke(tmp_path, tables=["table3"], preset_names=[], seeds=2)
    text = report.tables["table3"][0].read_text()
    cells = section(text, "ViT-B/16: reproduction")
    assert len(cells) == 6
    for row, column, n, ours, paper, verdict in cells:
        low, high = interval(ours)
        published = float(paper.split(" ± ")[0])
        expected = "above" if published < low else "below" if published > high else "reproduced"
        assert (n, verdict) == ("2", expected), (row, column)
    differences = section(text, "ViT-B/16: differences")
    assert [d[:3] for d in differences] == [
        [f"LE-SAM − {b}", d, "2, 2"] for b in ("SAM", "SGD*") for d in ("CIFAR-10", "CIFAR-100")
    ]
    for *_, ours, paper, ordering in differences:
        low, high = interval(ours)
        expected = "unresolved" if low <= 0 <= high else "held" if (low > 0) == (float(paper) > 0) else "reversed"
        assert ordering == expected


def test_smoke_script_refuses_to_clear_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("a result")
    result = subprocess.run(
        [sys.executable, "scripts/smoke.py", "--root", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "not made by the smoke" in lines[0], result.stderr
    assert (tmp_path / "precious.txt").read_text() == "a result"


def test_smoke_script_refuses_no_seeds(tmp_path):
    result = subprocess.run(
        [sys.executable, "scripts/smoke.py", "--root", str(tmp_path / "smoke"), "--seeds", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and lines == [
        "error: --seeds 0: pass 1 or more (the first seeds of each table's runs)"
    ]
    assert not (tmp_path / "smoke").exists()  # refused before it made the folder
