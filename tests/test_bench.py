"""The speed benchmark runs on the CPU at tiny sizes: one record per configuration, a table, Table 6's input."""

import json
import subprocess
import sys

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
    assert table[0].split() == ["model", "path", "opt", "s/epoch", "img/s", "/SAM", "/SGD", "peak", "GB"]
    by = {(r["model"], r["path"], r["optimizer"]): r for r in written["records"]}
    lesam = next(line.split() for line in table if line.split()[:3] == ["wrn28_10", "gpu", "lesam"])
    ratio = by["wrn28_10", "gpu", "lesam"]["step_ms"] / by["wrn28_10", "gpu", "sam"]["step_ms"]
    assert lesam[5] == f"{ratio:.3f}"
    assert set(read_bench(out)["resnet18", "lesam"]) == {"path=plain", "path=gpu"}  # Table 6's columns
