"""The speed benchmark runs on the CPU at tiny sizes: one record per configuration, a table, Table 6's input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from lesam.report.bench import read_bench


def test_bench_writes_a_record_per_configuration_and_prints_the_table(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/bench.py", "--tiny", "--models", "resnet18", "wrn28_10"]
    command += ["--steps", "2", "--warmup", "1", "--batch", "8", "--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["failed"] == [] and written["meta"]["steps"] == 2
    configurations = {(r["model"], r["path"], r["optimizer"]) for r in written["records"]}
    assert configurations == {
        (m, p, o) for m in ("resnet18", "wrn28_10") for p in ("plain", "gpu") for o in ("sgd", "sam", "lesam")
    }
    for r in written["records"]:
        assert r["s_per_epoch"] > 0 and abs(r["images_per_s"] * r["step_ms"] / 1e3 - 8) < 1e-6, r
    table = result.stdout.strip().splitlines()[-13:]  # the header and 12 rows come last
    header = ["model", "path", "opt", "k", "n", "s/epoch", "spread", "img/s", "/SAM", "/SGD", "peak", "GB"]
    assert table[0].split() == [*header, "step", "GB", "graphs"]
    by = {(r["model"], r["path"], r["optimizer"]): r for r in written["records"]}
    lesam = next(line.split() for line in table if line.split()[:3] == ["wrn28_10", "gpu", "lesam"])
    ratio = by["wrn28_10", "gpu", "lesam"]["step_ms"] / by["wrn28_10", "gpu", "sam"]["step_ms"]
    assert lesam[8] == f"{ratio:.3f}"
    assert set(read_bench(out)["resnet18", "lesam"]) == {"path=plain", "path=gpu"}  # Table 6's columns


def test_bench_measures_the_memory_of_each_number_of_micro_batches(tmp_path):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/self/clear_refs: the CPU's peak memory is measured on Linux only")
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/bench.py", "--tiny", "--models", "resnet18", "--optimizers", "lesam"]
    command += ["--paths", "plain", "--accumulation", "1", "2", "--steps", "1", "--warmup", "1", "--batch", "8"]
    command += ["--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())["records"]
    assert [r["accumulation_steps"] for r in records] == [1, 2]
    for r in records:  # measured on Linux (the resident set); the peak holds at least what it rose by
        assert r["peak_mem_gb"] > 0 and 0 <= r["step_mem_gb"] <= r["peak_mem_gb"], r
    rows = [line.split() for line in result.stdout.strip().splitlines()[-2:]]
    assert [row[3] for row in rows] == ["1", "2"]
    assert [row[-2] for row in rows] == [f"{r['step_mem_gb']:.3f}" for r in records]
    assert read_bench(out)["resnet18", "lesam"] == {"path=plain": records[0]["s_per_epoch"]}  # Table 6: k = 1


@pytest.mark.slow  # 22 s: spawns two bench processes
def test_bench_repeats_windows_and_runs_copies_at_once(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "scripts/bench.py", "--tiny", "--models", "resnet18", "--optimizers", "lesam"]
    command += ["--paths", "all", "--repeats", "3", "--processes", "1", "2", "--steps", "1", "--warmup", "1"]
    command += ["--batch", "8", "--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["failed"] == [] and written["meta"]["repeats"] == 3
    records = written["records"]
    assert sorted((r["path"], r["processes"]) for r in records) == [("gpu", 1), ("gpu", 2), ("plain", 1), ("plain", 2)]
    for r in records:  # the median of three windows, between the fastest and the slowest
        assert r["repeats"] == 3 and r["step_ms_min"] <= r["step_ms"] <= r["step_ms_max"], r
        assert r["graphs"] == 0  # no CUDA graph on the CPU
    assert set(read_bench(out)["resnet18", "lesam"]) == {"path=plain", "path=gpu"}  # Table 6: one run at a time
