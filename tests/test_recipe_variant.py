"""recipe_variant=authors: every difference of the LE-SAM authors' code from the paper's appendix F at once, for
Tables 1 and 4; each value with its source, listed beside the paper's, in runs of their own."""

import functools
import sys

import pytest
import torch
from omegaconf import DictConfig
from test_aggregate import write_run

from conftest import compose_config, run_command
from lesam.core.errors import UserError
from lesam.core.run_id import run_id, semantic_config
from lesam.engine.validate import validate
from lesam.optim import build_optimizer
from lesam.report.make_table import Options, make_table
from lesam.report.plan import composer, runs
from lesam.report.recipes import leaves
from lesam.report.tables import TABLE1, TABLE4, table

AUTHORS = ("recipe_variant=authors",)


def authors_changes(dataset: str, model: str, optimizer: str) -> dict[str, object]:
    """What the authors' code trains a Table 1 or 4 cell with where the paper says otherwise (the issue's list)."""
    changes: dict[str, object] = {"dataset.augment": "cutout"}  # ESAM's loader: Cutout(16) on every CIFAR run
    if model in ("resnet18", "wrn28_10"):
        changes["optimizer.weight_decay"] = 1e-3
    if optimizer in ("lesam", "lesam_plus"):
        changes["optimizer.delta_warmup_epochs"] = 10
    if optimizer == "lesam_plus":
        changes["optimizer.plus_form"] = "authors"
    if optimizer in ("lesam", "lesam_plus") and model == "resnet18":
        changes["optimizer.rho_max"] = None  # README: rho_max 999
    return changes


# Table 4's cells (SAM, LE-SAM, LE-SAM+ on each backbone) and Table 1's other methods on two backbones
CELLS = TABLE4.run_overrides() + [
    o for o in TABLE1.run_overrides() if o[0] in ("experiment=cifar10_resnet18", "experiment=cifar10_wrn28_10")
]


@functools.cache
def both(overrides: tuple[str, ...]) -> tuple[DictConfig, DictConfig]:
    """The cell's config with the paper's recipe and with the authors'."""
    with composer() as c:
        return c.compose(overrides), c.compose((*overrides, *AUTHORS))


def test_the_authors_variant_changes_exactly_the_known_differences():
    wrong = {}
    for overrides in CELLS:
        paper, authors = (dict(leaves(semantic_config(cfg))) for cfg in both(overrides))
        changed = {k: v for k, v in authors.items() if paper.get(k, "absent") != v and k != "recipe_variant"}
        expected = authors_changes(paper["dataset.name"], paper["model.name"], paper["optimizer.name"])
        if changed != expected:
            wrong[overrides] = (changed, expected)
        assert (paper["recipe_variant"], authors["recipe_variant"]) == ("paper", "authors")
    assert len(CELLS) == 23 and not wrong


def test_the_authors_lesam_plus_builds_with_its_codes_gradient():
    cfg = compose_config(["experiment=cifar100_wrn28_10", "optimizer=lesam_plus", *AUTHORS])
    opt = build_optimizer(cfg.optimizer, torch.nn.Linear(2, 2))
    assert (opt.plus_form, opt.adv_weight) == ("authors", 1.0)


def test_a_plus_form_neither_the_papers_nor_the_authors_is_one_line():
    cfg = compose_config(["optimizer=lesam_plus", "optimizer.plus_form=code"])
    with pytest.raises(UserError, match=r"^optimizer.plus_form='code' must be one of paper, authors$"):
        validate(cfg)


# ---- run ids ---------------------------------------------------------------------------------

# the ids of these runs before recipe_variant and optimizer.plus_form existed: the default's must not move
GOLDEN = {
    ("experiment=cifar100_resnet18", "optimizer=lesam"): "cifar100-resnet18-lesam-s0-60c9f079",
    ("experiment=cifar100_resnet18", "optimizer=lesam_plus"): "cifar100-resnet18-lesam_plus-s0-aff74d84",
    ("experiment=cifar10_wrn28_10", "optimizer=sgd"): "cifar10-wrn28_10-sgd-s0-7a92ba14",
    ("experiment=cifar100_pyramidnet110", "optimizer=sam"): "cifar100-pyramidnet110-sam-s0-0e5d0c26",
    ("experiment=imagenet_r50", "optimizer=esam"): "imagenet-resnet50-esam-s0-658aa12e",
}


def test_default_run_ids_are_unchanged_and_the_authors_differ():
    with composer() as c:
        for overrides, golden in GOLDEN.items():
            assert run_id(c.compose(overrides)) == golden
            assert run_id(c.compose((*overrides, "recipe_variant=paper"))) == golden
    paper = {run_id(both(o)[0]) for o in CELLS}
    authors = {run_id(both(o)[1]) for o in CELLS}
    assert len(paper) == len(authors) == len(CELLS) and not paper & authors


# ---- make recipes and make table -------------------------------------------------------------


def test_make_recipes_lists_each_change_with_both_sources():
    argv = ["make", "-s", "recipes", "TABLE=table4", "VARIANT=authors", "SOURCES=1", f"PY={sys.executable}"]
    result = run_command([*argv, "STAMP=Makefile"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("# What each cell of table4 trains with (recipe_variant=authors)")
    changes = text[text.index("## What recipe_variant=authors changes") :].splitlines()
    keys = [line.strip("- `") for line in changes if line.startswith("- `")]
    assert keys == [
        "dataset.augment",
        "optimizer.weight_decay",
        "optimizer.rho_max",
        "optimizer.delta_warmup_epochs",
        "optimizer.plus_form",
    ]
    plus = changes[changes.index("- `optimizer.plus_form`") :][:4]
    assert plus[1] == "  - paper -> authors in 3 of 9 cells"
    assert plus[2].startswith("    - paper: paper, section 6.1") and "[optimizer/lesam]" in plus[2]
    assert plus[3].startswith("    - authors: the authors' lesam.py") and "authors_lesam_plus]" in plus[3]
    decay = changes[changes.index("- `optimizer.weight_decay`") :][:4]
    assert decay[1] == "  - 0.0005 -> 0.001 in 3 of 9 cells"  # ResNet-18 (README), then WRN-28-10 (options.py)
    assert "appendix F" in decay[2] and "README.md L22" in decay[3]


def test_make_table_renders_the_authors_table_beside_the_papers(tmp_path, capsys):
    t = table("table4")
    accuracy = {(): 70.0, AUTHORS: 80.0}  # every paper run 70, every authors' run 80
    with composer() as c:
        for variant, value in accuracy.items():
            for i, run in enumerate(runs(t, (0,), lambda _, v=variant: (*v, f"output_root={tmp_path}"))):
                write_run(tmp_path, f"{'-'.join(variant) or 'paper'}{i}", c.compose(run.args), {"test_acc": value})
    out = tmp_path / "tables"
    for variant in ("paper", "authors"):
        make_table("table4", Options(source=tmp_path, out=out, seeds=(0,), variant=variant))
    capsys.readouterr()
    paper, authors = (out / "table4.md").read_text(), (out / "table4_authors.md").read_text()
    assert "70.00" in paper and "80.00" not in paper and "recipe_variant" not in paper
    assert "80.00" in authors and "70.00" not in authors
    assert "Trained with recipe_variant=authors" in authors and (out / "table4_authors.tex").is_file()


def test_make_table_dry_gives_each_run_the_variant_and_refuses_it_elsewhere():
    argv = ["make", "-s", "table4", "DRY=1", "VARIANT=authors", f"PY={sys.executable}", "STAMP=Makefile"]
    lines = run_command(argv).stdout.splitlines()
    assert len(lines) == 27 and all(line.endswith(" recipe_variant=authors") for line in lines)
    with pytest.raises(UserError) as error:
        make_table("table2", Options(dry=True, variant="authors"))
    assert str(error.value) == "VARIANT=authors: table2 has recipe variant paper; choose one, or leave VARIANT out"
