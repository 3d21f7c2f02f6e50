"""make fig3 ... fig7: each lists its runs, finds them where train.py puts them, and renders PNG and PDF."""

import json
import re
import shlex
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from lesam.core.files import write_json, write_text
from lesam.engine.run import run
from lesam.report.figures import dry_listing, ensure_analysis, figure_runs, make_figure

TINY = [  # every run of a figure shrunk to seconds on a CPU: a small CNN (with BatchNorm) on 8x8 images
    "debug=smoke",
    "dataset=synthetic",  # the figures' runs name their data set: this one replaces it
    "dataset.image_size=8",
    "model=small_cnn",
    "model.width=4",
    "trainer.epochs=2",
    "trainer.rho_every=1",
    "trainer.lpf.every=1",
    "trainer.lpf.batches=1",
]
ANALYSIS = {
    "fig3": "analysis.top_k=3 analysis.max_iter=5 analysis.trace_max_iter=5 analysis.num_batches=1 device=cpu",
    "fig4": "analysis.points_1d=5 analysis.points_2d=5 analysis.batch_size=16 analysis.num_batches=1 device=cpu",
}


MAKE_NOTE = re.compile(r"make(\[\d+\])?: ")  # make's own failure line; `make[1]:` when nested under `make test`


def make(figure, root, out, *extra):
    command = ["make", "-s", "-o", ".venv/.installed", figure, f"PY={sys.executable}", f"FROM={root}"]
    command += [f"FIG_DIR={out}", f"ARGS={' '.join(TINY)}", f"ANALYSIS={ANALYSIS.get(figure, '')}", *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def write_finished_run(figure_run, accuracies):
    """A run folder as train.py leaves it, minus the checkpoint: config, one metrics line per epoch, result."""
    folder = figure_run.folder
    write_text(folder / ".hydra" / "config.yaml", OmegaConf.to_yaml(figure_run.cfg))
    lines = [{"epoch": e + 1, "test_acc": acc, "delta": None} for e, acc in enumerate(accuracies)]
    write_text(folder / "metrics.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    write_json(folder / "final.json", {"test_acc": accuracies[-1], "epochs": len(accuracies)})


def assert_images(out, *names):
    for name in names:
        png, pdf = out / f"{name}.png", out / f"{name}.pdf"
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000, name
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000, name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Figure 3's three runs (SGD, SAM, LE-SAM), trained for real at tiny size; figures 4 and 5 reuse them."""
    root = tmp_path_factory.mktemp("runs")
    for figure_run in figure_runs("fig3", root, TINY):
        run(figure_run.cfg, folder=figure_run.folder)
    return root


def test_fig3_runs_the_hessian_analyses_and_renders(trained, tmp_path):
    result = make("fig3", trained, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_images(tmp_path, "fig3")
    for figure_run in figure_runs("fig3", trained, TINY):
        hessian = json.loads((figure_run.folder / "hessian.json").read_text())
        assert len(hessian["eigenvalues"]) == 3 and hessian["analysis"]["top_k"] == 3
        assert hessian["method"] == "power"  # the paper's estimator (flatness.ANALYSIS)
        assert all("lpf" in m for m in figure_run.metrics)


def test_fig4_renders_surfaces_contours_and_lines(trained, tmp_path):
    result = make("fig4", trained, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_images(tmp_path, "fig4", "fig4_1d")
    first = figure_runs("fig4", trained, TINY)[0]
    stamp = (first.folder / "landscape.json").stat().st_mtime_ns
    ensure_analysis(first, "landscape", ANALYSIS["fig4"].split())
    assert (first.folder / "landscape.json").stat().st_mtime_ns == stamp  # the same settings reuse it
    ensure_analysis(first, "landscape", [*ANALYSIS["fig4"].split(), "analysis.points_2d=3"])
    assert len(json.loads((first.folder / "landscape.json").read_text())["grid"]) == 3  # other settings redo it


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Figures 6 and 7's runs as finished run folders written by the test (two epochs of made-up accuracies)."""
    root = tmp_path_factory.mktemp("written")
    for figure in ("fig6", "fig7"):
        for i, figure_run in enumerate(figure_runs(figure, root, TINY)):
            write_finished_run(figure_run, [40.0 + i % 7, 60.0 + i % 5 + i % 3 / 2])
    return root


@pytest.mark.parametrize("figure", ["fig6", "fig7"])
def test_fig6_and_fig7_render_from_run_folders(figure, written, tmp_path):
    result = make(figure, written, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_images(tmp_path, figure)


def test_dry_listings_hold_the_papers_runs(tmp_path):
    fig3 = dry_listing("fig3", figure_runs("fig3", tmp_path, []), tmp_path, [])
    assert [line.split()[1] for line in fig3] == ["train.py"] * 3 + ["analyze.py"] * 3
    assert all("dataset=cifar100 model=resnet18" in line for line in fig3[:3])
    assert all(f"output_root={tmp_path}" in line and line.endswith(": missing") for line in fig3[:3])
    assert all(line.split().count("analysis.method=power") == 1 for line in fig3[3:])
    lanczos = dry_listing("fig3", figure_runs("fig3", tmp_path, []), tmp_path, ["analysis.method=lanczos"])
    assert all("analysis.method=lanczos" in line.split() and "power" not in line for line in lanczos[3:])
    switch = [r.cfg.optimizer for r in figure_runs("fig6", tmp_path, [])]
    assert sum(o.get("start_epoch") == 160 for o in switch) == 9  # SGD -> SAM, -> LE-SAM, -> LE-SAM unstabilised
    assert sum(o.name == "lesam" and o.rho_max is None and o.anneal_start_epoch is None for o in switch) == 6
    fig7 = figure_runs("fig7", tmp_path, [])
    sweep = [(r.series, r.cfg.optimizer.get(r.series), r.cfg.seed) for r in fig7]
    assert sorted(s for s in sweep if s[0] == "delta") == [
        ("delta", d, s) for d in (0.3, 0.35, 0.4, 0.45, 0.5) for s in (0, 1, 2)
    ]
    assert sorted(a for series, a, _ in sweep if series == "alpha") == sorted([0.3, 0.4, 0.5, 0.6, 0.7] * 3)
    assert {(r.cfg.dataset.name, r.cfg.model.name) for r in fig7} == {("cifar100", "resnet18")}


@pytest.mark.slow  # 15 s: trains the listed run
def test_a_listed_command_trains_the_run_the_figure_draws(tmp_path):
    nothing = make("fig5", tmp_path / "runs", tmp_path / "out")
    lines = [x for x in nothing.stderr.strip().splitlines() if not MAKE_NOTE.match(x)]
    assert nothing.returncode == 2 and lines == [
        "error: none of the 1 runs of fig5 has finished under "
        + (f"'{tmp_path / 'runs'}'; `make fig5 DRY=1` lists the commands that train them")
    ]
    listing = make("fig5", tmp_path / "runs", tmp_path / "out", "DRY=1")
    assert listing.returncode == 0, listing.stderr
    (command,) = listing.stdout.splitlines()
    train = shlex.split(command.split("  #")[0])
    assert train[1] == "train.py"
    trained = subprocess.run(train, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    result = make("fig5", tmp_path / "runs", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert_images(tmp_path / "out", "fig5")


def test_the_delta_sweep_lands_where_figure_7_looks_and_a_partial_sweep_draws(tmp_path):
    command = [sys.executable, "train.py", "-m", "sweep=delta", *TINY, "optimizer.delta=0.3,0.5", "seed=0"]
    swept = subprocess.run([*command, f"output_root={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert swept.returncode == 0, swept.stderr
    finished = [(r.cfg.optimizer.delta, r.cfg.seed) for r in figure_runs("fig7", tmp_path, TINY) if r.finished]
    assert finished == [(0.3, 0), (0.5, 0)]
    paths = make_figure("fig7", tmp_path, tmp_path / "out", TINY)  # 2 of 30 runs: drawn, the rest left out
    assert [p.name for p in paths] == ["fig7.png", "fig7.pdf"]
    assert_images(tmp_path / "out", "fig7")
