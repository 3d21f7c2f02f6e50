"""scripts/compare.py and the run reader behind it read folders a crash left behind."""

import runpy

from conftest import ROOT, TINY, compose_config, smoke_overrides
from lesam.core.run_folder import RunFolder
from lesam.engine.run import run
from lesam.report import load_runs


def test_compare_reads_a_run_whose_last_metrics_line_was_cut_off(tmp_path, capsys):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=2"))
    run(cfg, folder=tmp_path / "runs" / "cut")
    folder = RunFolder(tmp_path / "runs" / "cut")
    whole = folder.read_metrics()
    with open(folder.metrics, "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a crash in the middle of an append
    (loaded,) = load_runs(tmp_path / "runs")
    assert loaded["metrics"] == whole and [m["epoch"] for m in whole] == [1, 2]
    runpy.run_path(str(ROOT / "scripts" / "compare.py"))["main"](str(tmp_path / "runs"))
    header, line = capsys.readouterr().out.splitlines()
    assert header.startswith("dataset") and line.split()[:4] == ["synthetic", "mlp", "sgd", "0"]


def test_compare_shows_a_diverged_run_as_diverged(tmp_path, capsys):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=1"))
    run(cfg, folder=tmp_path / "runs" / "nan")
    folder = RunFolder(tmp_path / "runs" / "nan")
    final = folder.read_final() | {"status": "diverged", "reason": "its test loss is nan", "test_acc": float("nan")}
    folder.write_final(final)
    runpy.run_path(str(ROOT / "scripts" / "compare.py"))["main"](str(tmp_path / "runs"))
    header, line = capsys.readouterr().out.splitlines()
    assert line.split() == ["synthetic", "mlp", "sgd", "0", "diverged"]
