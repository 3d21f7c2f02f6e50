"""Bad input: one line that names the problem and what to do, a non-zero exit, no run folder."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK_RUN, ROOT, error_line, run_command


def train(tmp_path, *overrides, env=None):
    out = tmp_path / "out"
    result = run_command([sys.executable, "train.py", f"output_root={out}", "trainer.progress=false", *overrides], env)
    return result, out


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["optimizer=lesma"], "unknown optimizer 'lesma'"),
        (["optimizer.delta=-0.1"], "optimizer.delta"),
        (["optimizer=sam", "optimizer.rho=0"], "optimizer.rho"),
        (["trainer.epochz=3"], "epochz"),
        (["trainer.epochs=many"], "trainer.epochs"),
        (["dataset=synthetic", "optimizer=msam", "optimizer.base=adam"], "optimizer=msam: MSAM perturbs along"),
        (
            ["trainer.batch_size=4", "trainer.accumulation_steps=8"],
            "trainer.accumulation_steps=8 is more",
        ),
        (["dataset=cifar10", "dataset.download=false", "dataset.root=/nonexistent/cifar"], "dataset.root"),
        (["experiment=demoo"], "unknown experiment 'demoo'; choose one of: cifar100_lt,"),
        (["sweep=seed"], "unknown sweep 'seed'; choose one of: alpha,"),
        (["~optimizer.delta"], "~optimizer.delta: the run needs optimizer.delta; set optimizer.delta=<value>"),
        (
            ["dataset=synthetic", "dataset.num_train=32", "trainer.batch_size=33"],
            "trainer.batch_size=33 is larger than the training set (32 images)",
        ),
        (["hydra/launcher=slurmm"], "unknown hydra/launcher 'slurmm'; choose one of: basic, slurm, slurm_cpu"),
        (["sweep=seeds"], "sweep=seeds acts only in a multirun: add -m (python train.py -m sweep=seeds ...)"),
        (
            ["model=wrn28_10", "model.name=resnet18"],
            "model.name=resnet18 disagrees with model=wrn28_10; choose model=resnet18 instead of setting model.name",
        ),
        ([f"+trainer.{'b' * 300}=1"], f"unknown key 'trainer.{'b' * 32}...' (308 characters): file name too long;"),
    ],
)
def test_bad_input_gives_one_line(tmp_path, overrides, needle):
    result, out = train(tmp_path, "model=small_cnn", *overrides)
    assert needle in error_line(result)
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))


@pytest.mark.parametrize("value,debug", [("0", False), ("1", True), ("Yes", True)])
def test_only_a_true_hydra_full_error_shows_the_traceback(tmp_path, value, debug):
    result, _ = train(tmp_path, "optimizer=lesma", env={"HYDRA_FULL_ERROR": value})
    if debug:
        assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr, result.stderr
    else:
        assert "unknown optimizer 'lesma'" in error_line(result)


def test_hydra_full_error_shows_the_traceback_of_a_mistake_the_run_finds_too(tmp_path):
    """The config checks run inside the run, where Hydra is done: HYDRA_FULL_ERROR holds there as well."""
    result, _ = train(tmp_path, "model=small_cnn", "optimizer.delta=-1", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr, result.stderr
    assert "UserError: optimizer.delta=-1 must be >= 0" in result.stderr


def test_an_empty_output_root_is_one_line_and_writes_nothing_into_the_root_folder():
    before = set(Path("/").glob("synthetic-mlp-*"))  # the run's folder would be /<run id>
    result = run_command([sys.executable, "train.py", "output_root=", *QUICK_RUN])
    assert "output_root='' must name a folder other than /" in error_line(result)
    assert set(Path("/").glob("synthetic-mlp-*")) == before


def test_a_listing_piped_into_a_reader_that_leaves_ends_quietly(tmp_path):
    """As `make table1 DRY=1 | head`: every script's main is wrapped the same way (here compare.py's)."""
    config = tmp_path / "run" / ".hydra" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("dataset: {name: synthetic}\nmodel: {name: mlp}\noptimizer: {name: sgd}\nseed: 0\n")
    listing = subprocess.Popen(
        [sys.executable, "scripts/compare.py", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listing.stdout.close()  # the reader is gone before the first line
    _, stderr = listing.communicate(timeout=300)
    assert listing.returncode == 0 and stderr == "", stderr


@pytest.mark.parametrize(
    "script,shown,hidden",
    [
        (
            "train.py",
            ("experiment ", "recipe_variant ", "optimizer ", "sweep ", "hydra/launcher "),
            ("recipe/", "analysis", "trainer:"),  # the recipe layers apply themselves; recipe_variant is a choice
        ),
        ("analyze.py", ("analysis  accuracy, hessian, landscape, lpf, pgd",), ("optimizer", "recipe", "trainer")),
    ],
)
def test_help_starts_with_usage_and_shows_the_groups_to_choose_from(script, shown, hidden):
    result = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python {script} "), result.stdout
    assert all(f"  {group}" in result.stdout for group in shown), result.stdout
    assert not any(word in result.stdout for word in hidden), result.stdout


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    result = subprocess.run(
        [sys.executable, "train.py", f"output_root={blocker}/runs", "dataset=synthetic", "model=small_cnn"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "output_root" in lines[0], result.stderr


def test_a_good_run_writes_its_folder(tmp_path):
    result, out = train(tmp_path, *QUICK_RUN)
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert folder.name.startswith("synthetic-mlp-lesam-s0-")
    assert {p.name for p in folder.iterdir()} >= {".hydra", "metrics.jsonl", "final.json", "last.pt", "train.log"}
