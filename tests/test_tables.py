"""Each table's runs are exactly the paper's, DRY lists them one command per line, and the paper's
numbers file has an entry for every cell of ours."""

import itertools
import re
import shlex
import subprocess
import sys

import pytest
from hydra import compose
from omegaconf import OmegaConf

from conftest import ROOT
from lesam.core.run_id import run_id
from lesam.report.make_table import Options, dry_run
from lesam.report.paper import paper_tables
from lesam.report.plan import composer, missing_configs, multiruns, runs, split_seed
from lesam.report.tables import ALIASES, TABLES, table

PAPER_RUNS = {  # the paper's runs: cells x seeds 0, 1, 2
    "table1": 2 * 3 * 7 * 3,
    "table2": 2 * 7 * 3,
    "table3": 2 * 3 * 3,
    "table4": 3 * 3 * 3,
    "table5": 2 * 2 * 3,
    "table6": 0,
    "table7": 2 * 3 * 3,
    "table_dg": 2 * 4 * 3 * 3,
}


def assert_configs_exist(name, extra=()):
    """Every config group option that the table's runs choose exists."""
    assert missing_configs(table(name), extra) == [], name


def test_every_table_has_a_count():
    assert set(PAPER_RUNS) == set(TABLES)
    assert table("table_lesam_plus") is table("table4") and set(ALIASES) == {"table_lesam_plus"}


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
def test_run_count_is_the_papers(name):
    planned = runs(table(name))
    assert len(planned) == PAPER_RUNS[name]
    assert len(set(planned)) == len(planned)
    assert all(r.seed in (0, 1, 2) for r in planned)


def test_table1_is_datasets_by_backbones_by_methods_by_seeds():
    planned = {(r.overrides, r.seed) for r in runs(table("table1"))}
    families = [
        f"experiment={d}_{m}" for d in ("cifar10", "cifar100") for m in ("resnet18", "wrn28_10", "pyramidnet110")
    ]
    methods = [f"optimizer={o}" for o in ("sgd", "eigensam", "asam", "esam", "fsam", "sam", "lesam")]
    assert planned == {((f, o), s) for f, o, s in itertools.product(families, methods, (0, 1, 2))}


def test_table4_shares_table1s_cifar100_sam_and_lesam_runs():
    table1, table4 = set(runs(table("table1"))), set(runs(table("table4")))
    shared = {r for r in table4 if r.overrides[-1] in ("optimizer=sam", "optimizer=lesam")}
    assert len(shared) == 18 and shared <= table1
    assert {r.overrides[-1] for r in table4 - shared} == {"optimizer=lesam_plus"}


def test_domain_generalisation_runs_each_source_domain_with_erm_plus_plus():
    planned = runs(table("table_dg"))
    assert all(r.overrides[1] == "method=ermpp" for r in planned)
    sources = {o for r in planned for o in r.overrides if o.startswith("dataset.source_domain=")}
    assert len(sources) == 8


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
def test_multiruns_cover_exactly_the_runs(name):
    planned = runs(table(name))
    expanded = {
        ((*m.fixed, f"{m.key}={v}") if m.key else m.fixed, s)
        for m in multiruns(planned)
        for v in m.values or [None]
        for s in m.seeds
    }
    assert expanded == {(r.overrides, r.seed) for r in planned}
    if name == "table1":
        assert len(multiruns(planned)) == 6  # one `train.py -m` per cell family, sweeping the 7 methods


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
def test_dry_listing_has_one_full_command_per_run(name, capsys):
    assert_configs_exist(name)
    dry_run(table(name), Options(dry=True))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == PAPER_RUNS[name]
    for line, run in zip(lines, runs(table(name)), strict=True):
        train = shlex.split(line.split(" && ")[0])
        assert train[1] == "train.py" and train[2:] == list(run.args)
        for analysis in table(name).analyses:
            assert f" && {shlex.join([train[0], 'analyze.py', *analysis.overrides])} checkpoint=" in line


@pytest.mark.parametrize("name", ["table1", "table4", "table_dg"])
def test_a_runs_config_is_what_hydra_composes_though_its_seeds_share_one_composition(name):
    first, *_, last = runs(table(name), extra=lambda _: ("trainer.epochs=3",))
    with composer() as c:
        for run in (first, last):
            shared = c.compose(run.args)
            assert split_seed(run.args)[1] == run.seed and shared.seed == run.seed
            alone = compose(config_name="config", overrides=list(run.args))
            assert OmegaConf.to_container(shared) == OmegaConf.to_container(alone)
            assert run_id(shared) == run_id(alone)


@pytest.mark.parametrize("args", [("seed=1", "seed=2"), ("seed=0,1",), ("seed=01",), ("+seed=3",), ()])
def test_only_one_plain_seed_is_taken_off(args):
    assert split_seed(("model=resnet18", *args)) == (("model=resnet18", *args), None)


def test_make_dry_prints_exactly_the_runs():
    result = subprocess.run(
        ["make", "-s", "table4", "DRY=1", f"PY={sys.executable}", "STAMP=Makefile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 27 and all(" train.py experiment=cifar100_" in x for x in lines)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["table9", "--dry"], "unknown table 'table9'"),
        (["table4", "--from", "/nonexistent/runs"], "FROM=/nonexistent/runs"),
        (["table4", "--dry", "experiment=nope"], "configs/experiment/nope.yaml"),
        (["all"], "'all' only lists"),
    ],
)
def test_table_command_mistakes_give_one_line(args, needle):
    result = subprocess.run(
        [sys.executable, "scripts/table.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0]


def test_paper_numbers_have_an_entry_for_every_cell_of_ours():
    paper = paper_tables()
    assert set(paper) == set(TABLES)
    for name, t in TABLES.items():
        for block in t.blocks:
            if block.title not in paper[name].blocks:
                continue  # a block of ours only (e.g. Table 7's shot groups)
            cells = {(c.row, c.column) for c in block.cells} | {(r, block.average) for r in block.rows if block.average}
            printed = {(r, c) for r, cols in paper[name].blocks[block.title].items() for c in cols}
            assert cells == printed, (name, block.title, cells ^ printed)


def test_comparisons_are_labels_of_one_axis_and_the_stated_differences_name_them():
    compared = set()
    for name, t in TABLES.items():
        for block in t.blocks:
            for method, baseline in block.comparisons:
                on_rows = {method, baseline} <= set(block.rows)
                assert on_rows or {method, baseline} <= set(block.columns), (name, block.title, method, baseline)
                others = block.columns if on_rows else block.rows
                compared |= {(name, block.title, method, baseline, label) for label in others}
    stated = {(name, *key) for name, paper in paper_tables().items() for key in paper.differences}
    assert stated and stated <= compared, stated - compared


def test_paper_numbers_as_printed():
    paper = paper_tables()
    assert all(v.mean is None for rows in paper["table1"].blocks.values() for r in rows.values() for v in r.values())
    assert paper["table2"].value("ImageNet", "ResNet-101", "LE-SAM").mean == 79.31
    vit = paper["table3"].value("ViT-B/16", "LE-SAM", "CIFAR-10")
    assert (vit.mean, vit.std) == (98.72, 0.08)
    assert paper["table4"].value("CIFAR-100", "WRN-28-10", "LE-SAM+").mean == 85.06
    assert paper["table7"].value("CIFAR-100-LT", "GLMC + LE-SAM", "100").mean is None
    assert paper["table_dg"].value("VLCS", "LE-SAM", "Avg").mean == 53.47
    assert paper["table1"].stated_difference("CIFAR-100", "LE-SAM", "SAM", "WRN-28-10") == 1.49  # Section 5.1
    assert paper["table7"].stated_difference("CIFAR-100-LT", "GLMC + LE-SAM", "GLMC", "50") == 2.57  # Appendix E
    lesam_minus_sam = [
        paper["table4"].value("CIFAR-100", b, "LE-SAM").mean - paper["table4"].value("CIFAR-100", b, "SAM").mean
        for b in ("ResNet-18", "WRN-28-10", "PyramidNet-110")
    ]
    assert lesam_minus_sam == pytest.approx([1.34, 1.49, 1.45])  # Section 5.1's differences


def test_the_tables_page_shows_every_number_the_paper_prints():
    readme = (ROOT / "docs" / "tables.md").read_text()
    for name, t in paper_tables().items():
        for rows in t.blocks.values():
            for cells in rows.values():
                for v in cells.values():
                    for number in (v.mean, v.std):
                        if number is None:
                            continue
                        forms = {f"{number:.2f}", f"{number:g}"}
                        assert any(re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", readme) for f in forms), (
                            name,
                            number,
                        )
    for name, count in PAPER_RUNS.items():
        if count:
            assert f"`make {name}`: {count} runs" in readme or f"`make {name}` (the same as" in readme, name
