"""Tables from run folders written by the test: the right mean and std per cell, missing cells marked,
runs found by their config (not their folder's name), the paper's number beside ours."""

import json
import math
import statistics

import pytest
from omegaconf import OmegaConf

from lesam.core.errors import UserError
from lesam.report.aggregate import Stat, collect
from lesam.report.bench import read_bench
from lesam.report.paper import PaperValue
from lesam.report.plan import DIVERGED, FINISHED, NOT_STARTED, UNFINISHED, composer, locate, runs
from lesam.report.render import difference, latex, latex_escape, markdown, ours, paper, reproduction
from lesam.report.spec import Metric, Table, TargetDomainMean
from lesam.report.tables import grid, quoted, table


def write_run(root, name, cfg, final=None):
    """A run folder as train.py leaves it: .hydra/config.yaml, and final.json once finished."""
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if final is not None:
        (folder / "final.json").write_text(json.dumps(final))
    return folder


def accuracy(overrides, seed):
    """A distinct, known accuracy per run."""
    return 60.0 + 3.0 * (hash(overrides) % 7) + 0.37 * seed**2


def test_table4_from_run_folders(tmp_path):
    t = table("table4")
    planned = runs(t, extra=lambda _: (f"output_root={tmp_path}",))
    absent = ("experiment=cifar100_pyramidnet110", "optimizer=lesam_plus")  # a cell with no run at all
    unfinished = (("experiment=cifar100_wrn28_10", "optimizer=sam"), 2)  # one run without final.json
    with composer() as c:
        for i, run in enumerate(planned):
            if run.overrides == absent:
                continue
            done = (run.overrides, run.seed) != unfinished
            final = {"test_acc": accuracy(run.overrides, run.seed)} if done else None
            write_run(tmp_path, f"run{i:03d}", c.compose(run.args), final)  # names unrelated to the run ids
        sweep_run = c.compose((*planned[0].args, "optimizer.rho=0.2"))  # another radius: not a cell of Table 4
        write_run(tmp_path, "sweep", sweep_run, {"test_acc": 0.0})
        write_run(tmp_path, "a-stale-copy", c.compose(planned[0].args))  # unfinished, found first: not taken
        states = locate(planned, c)
    result = collect(t, states)
    assert (result.count(FINISHED), result.count(UNFINISHED), result.count(NOT_STARTED)) == (23, 1, 3)
    (block,) = result.blocks
    for row, column, overrides in [(c.row, c.column, c.overrides) for c in t.blocks[0].cells]:
        stat = block.stats[row, column]
        seeds = [s for s in (0, 1, 2) if overrides != absent and (overrides, s) != unfinished]
        values = [accuracy(overrides, s) for s in seeds]
        assert (stat.n, stat.expected) == (len(values), 3)
        if len(values) >= 2:
            assert stat.mean == pytest.approx(statistics.mean(values))
            assert stat.std == pytest.approx(statistics.stdev(values))
    assert block.stats["PyramidNet-110", "LE-SAM+"].mean is None
    assert block.paper["ResNet-18", "SAM"] == PaperValue(80.17)
    text = markdown(result)
    assert "| PyramidNet-110 |" in text and "missing (0/3) | 86.19 |" in text
    assert "(2/3) | 83.42 |" in text
    assert "Runs: 23 of 27 finished, 1 unfinished, 3 not started." in text
    assert r"\begin{tabular}" in latex(result) and "missing (0/3)" in latex(result)


def test_a_diverged_run_counts_in_no_cell_and_the_table_says_so(tmp_path):
    t = table("table4")
    planned = runs(t, extra=lambda _: (f"output_root={tmp_path}",))
    sam = [r for r in planned if r.overrides == ("experiment=cifar100_resnet18", "optimizer=sam")]
    diverged = {"status": "diverged", "reason": "its test loss is nan", "test_acc": math.nan}
    with composer() as c:
        for run, final in zip(sam, [{"test_acc": 80.0}, {"test_acc": 81.0}, diverged], strict=True):
            write_run(tmp_path, f"seed{run.seed}", c.compose(run.args), final)
        result = collect(t, locate(planned, c))
    assert result.blocks[0].stats["ResNet-18", "SAM"].values == {0: 80.0, 1: 81.0}
    assert (result.count(FINISHED), result.count(DIVERGED)) == (2, 1)
    text = markdown(result)
    assert "| ResNet-18 | 80.50 ± 0.71 (2/3) |" in text
    assert "Runs: 2 of 27 finished, 1 diverged, 24 not started." in text
    note = "Left out: 1 run diverged (a non-finite test loss or weights at the end; final.json says so) and count in "
    assert [line for line in text.splitlines() if "diverged (" in line] == [f"- {note}no cell: seed2."]


def dg_like_table():
    """A table of the domain-generalisation kind that composes without other issues' configs."""
    domains = {d: (f"+dataset.source_domain={d}",) for d in ("a", "b", "c")}
    rows = {"SGD": ("optimizer=sgd",), "SAM": ("optimizer=sam",)}
    fixed = ("dataset=synthetic", "model=mlp")
    main = grid("Toy", rows, domains, fixed, "rows", TargetDomainMean(), average="Avg", comparisons=(("SAM", "SGD"),))
    groups = grid("Groups", rows, domains, fixed=fixed, swept="rows", metric=Metric(key="shot_acc"))
    return Table("toy", "A toy table", (quoted(main, ("Other work",)), groups), seeds=(0, 1))


def test_target_domain_mean_average_column_and_named_values(tmp_path):
    t = dg_like_table()
    planned = runs(t, extra=lambda _: (f"output_root={tmp_path}",))
    domain_acc = {"a": 10.0, "b": 20.0, "c": 60.0}
    with composer() as c:
        for i, run in enumerate(planned):
            source = run.overrides[2].partition("=")[2]
            if run.overrides[-1] == "optimizer=sam" and source == "b" and run.seed == 1:
                continue  # SAM misses one run: its average loses that seed
            scale = 1 + run.seed
            final = {"domain_acc": {d: v * scale for d, v in domain_acc.items()}, "shot_acc": {"many": 5.0 * scale}}
            write_run(tmp_path, f"run{i}", c.compose(run.args), final)
        result = collect(t, locate(planned, c))
    toy, groups = result.blocks
    targets = {s: statistics.mean(v for d, v in domain_acc.items() if d != s) for s in domain_acc}
    assert toy.stats["SGD", "a"].values == {0: targets["a"], 1: 2 * targets["a"]}
    expected_avg = [statistics.mean(targets.values()) * (1 + seed) for seed in (0, 1)]
    assert toy.stats["SGD", "Avg"].mean == pytest.approx(statistics.mean(expected_avg))
    assert toy.stats["SGD", "Avg"].std == pytest.approx(statistics.stdev(expected_avg))
    assert toy.stats["SAM", "Avg"].values == pytest.approx({0: expected_avg[0]})
    assert toy.stats["Other work", "a"] is None and "not run here" in markdown(result)
    assert groups.columns == ["a · many", "b · many", "c · many"]
    assert groups.stats["SGD", "b · many"].values == {0: 5.0, 1: 10.0}
    assert groups.paper["SGD", "b · many"] is None  # the paper has no such cell: '—'
    assert {line[-1] for line in reproduction(toy)} == {"—"}  # no published number: no verdict
    assert [(d.label, [s.n for s in d.ours]) for d in toy.differences] == [
        ("a", [2, 2]),
        ("b", [1, 2]),
        ("c", [2, 2]),
        ("Avg", [1, 2]),  # the average column is compared too
    ]
    assert toy.differences[0].interval.center == 0.0 and {d.ordering for d in toy.differences} == {"—"}


def test_table6_from_benchmark_json(tmp_path):
    records = [
        {
            "model": "resnet18",
            "optimizer": "sam",
            "loader": "gpu",
            "compile": True,
            "s_per_epoch": 1.25,
            "images_per_s": 4e4,
        },
        {"model": "resnet18", "optimizer": "sam", "loader": "torch", "compile": False, "s_per_epoch": 7.5},
        {"model": "resnet18", "optimizer": "lesam", "loader": "gpu", "compile": True, "s_per_epoch": 1.5},
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"records": records}))
    result = collect(table("table6"), [], bench=read_bench(path))
    (block,) = result.blocks
    fast, slow = "s/epoch · loader=gpu, compile=True", "s/epoch · loader=torch, compile=False"
    assert block.columns == [fast, slow]
    assert block.stats["ResNet-18 SAM", fast].mean == 1.25 and block.stats["ResNet-18 SAM", slow].mean == 7.5
    assert block.stats["ResNet-18 LE-SAM", slow].n == 0 and block.stats["WRN-28-10 SAM", fast].n == 0
    assert block.paper["ResNet-18 SAM", fast] == PaperValue(9.06)
    path.write_text(json.dumps([{"model": "resnet18", "s_per_epoch": 1.0}]))
    with pytest.raises(UserError, match="lacks optimizer"):
        read_bench(path)


def test_cell_and_paper_formats():
    assert ours(Stat({0: 80.0, 1: 81.0, 2: 82.0}, 3)) == "81.00 ± 1.00 (3/3)"
    assert ours(Stat({0: 80.123}, 3)) == "80.12 (1/3)"
    assert ours(Stat({}, 3)) == "missing (0/3)"
    assert ours(None) == "not run here"
    assert paper(PaperValue(98.08, 0.11)) == "98.08 ± 0.11"
    assert paper(PaperValue(None)) == "not stated" and paper(None) == "—"
    assert latex_escape("acc (%) 1 ± 2 · x_y & z") == r"acc (\%) 1 $\pm$ 2 $\cdot$ x\_y \& z"
    assert latex_escape("LE-SAM − SAM — [1, 2]") == r"LE-SAM $-$ SAM --- [1, 2]"


# t_{0.975, df} in closed form (see tests/test_confidence.py): df 1 tan(0.475 pi); df 2 sqrt(2 * 0.95^2 / (1 - 0.95^2));
# df 4 Shaw (2006): a = 4p(1-p), q = cos(arccos(sqrt(a)) / 3) / sqrt(a), t = 2 sqrt(q - 1)
T1, T2, T4 = 12.706204736174696, 4.302652729749464, 2.7764451051977934
TABLE4_RUNS = {  # (backbone, method) -> accuracy by seed; the paper's number in the comment
    ("resnet18", "sam"): {0: 80.0, 1: 80.2, 2: 80.4},  # 80.17: in [79.70, 80.70], reproduced
    ("resnet18", "lesam"): {0: 82.0, 1: 82.2, 2: 82.4},  # 81.51: the interval lies above it
    ("resnet18", "lesam_plus"): {1: 82.5},  # 82.01: one seed
    ("wrn28_10", "sam"): {0: 83.42, 1: 83.42, 2: 83.42},  # 83.42: no variance, equal, reproduced
    ("wrn28_10", "lesam"): {0: 84.0, 1: 84.0, 2: 84.0},  # 84.91: no variance, below
    ("wrn28_10", "lesam_plus"): {0: 84.0, 2: 85.0},  # 85.06: two seeds, df 1, reproduced
    ("pyramidnet110", "sam"): {0: 85.0, 1: 85.2, 2: 85.4},  # 84.46: above
    ("pyramidnet110", "lesam"): {0: 84.0, 1: 84.2, 2: 84.4},  # 85.91: below
}  # PyramidNet-110 LE-SAM+: no run


@pytest.fixture(scope="module")
def table4_known(tmp_path_factory):
    """Table 4 collected from run folders holding TABLE4_RUNS' accuracies."""
    root = tmp_path_factory.mktemp("table4")
    t = table("table4")
    planned = runs(t, extra=lambda _: (f"output_root={root}",))
    with composer() as c:
        for i, run in enumerate(planned):
            model, method = (o.partition("=")[2].removeprefix("cifar100_") for o in run.overrides)
            accuracy = TABLE4_RUNS.get((model, method), {}).get(run.seed)
            if accuracy is not None:
                write_run(root, f"run{i:03d}", c.compose(run.args), {"test_acc": accuracy})
        return collect(t, locate(planned, c))


def test_reproduction_intervals_and_verdicts_from_run_folders(table4_known):
    (block,) = table4_known.blocks
    lines = {(row, column): line for row, column, *line in reproduction(block)}
    half3, half2 = T2 * 0.2 / math.sqrt(3), T1 * math.sqrt(0.5) / math.sqrt(2)  # sample stds 0.2 and sqrt(0.5)
    assert block.stats["ResNet-18", "SAM"].interval.low == pytest.approx(80.2 - half3, rel=1e-12)
    assert block.stats["WRN-28-10", "LE-SAM+"].interval.high == pytest.approx(84.5 + half2, rel=1e-12)
    assert lines["ResNet-18", "SAM"] == ["3", f"80.20 [{80.2 - half3:.2f}, {80.2 + half3:.2f}]", "80.17", "reproduced"]
    assert lines["ResNet-18", "LE-SAM"] == ["3", "82.20 [81.70, 82.70]", "81.51", "above"]
    assert lines["ResNet-18", "LE-SAM+"] == ["1", "82.50", "82.01", "one seed"]
    assert lines["WRN-28-10", "SAM"] == ["3", "83.42 [83.42, 83.42]", "83.42", "reproduced"]
    assert lines["WRN-28-10", "LE-SAM"] == ["3", "84.00 [84.00, 84.00]", "84.91", "below"]
    assert lines["WRN-28-10", "LE-SAM+"] == [
        "2",
        f"84.50 [{84.5 - half2:.2f}, {84.5 + half2:.2f}]",
        "85.06",
        "reproduced",
    ]
    assert lines["PyramidNet-110", "SAM"][-1] == "above" and lines["PyramidNet-110", "LE-SAM"][-1] == "below"
    assert lines["PyramidNet-110", "LE-SAM+"] == ["0", "missing", "86.19", "—"]


def test_differences_with_welch_intervals_and_the_papers_ordering(table4_known):
    (block,) = table4_known.blocks
    found = {(d.method, d.baseline, d.label): d for d in block.differences}
    assert len(found) == 6  # two comparisons x three backbones
    half = T4 * math.sqrt(0.08 / 3)  # equal variances 0.04 on three seeds each: Welch's df is 4
    gain = found["LE-SAM", "SAM", "ResNet-18"]
    assert (gain.interval.low, gain.interval.high) == pytest.approx((2 - half, 2 + half), rel=1e-12)
    assert gain.paper == pytest.approx(81.51 - 80.17) and gain.ordering == "held"
    loss = found["LE-SAM", "SAM", "PyramidNet-110"]
    assert (loss.interval.low, loss.interval.high) == pytest.approx((-1 - half, -1 + half), rel=1e-12)
    assert loss.ordering == "reversed"
    assert found["LE-SAM", "SAM", "WRN-28-10"].interval.half_width == 0.0  # no variance on either side
    plus = found["LE-SAM+", "LE-SAM", "WRN-28-10"]  # sqrt(0.5) over two seeds against no variance: df 1, se 0.5
    assert (plus.interval.low, plus.interval.high) == pytest.approx((0.5 - T1 * 0.5, 0.5 + T1 * 0.5), rel=1e-12)
    assert plus.ordering == "unresolved"
    assert found["LE-SAM+", "LE-SAM", "ResNet-18"].ordering == "one seed"
    assert found["LE-SAM+", "LE-SAM", "PyramidNet-110"].ordering == "—"  # LE-SAM+ has no run
    assert difference(gain) == [
        "LE-SAM − SAM",
        "ResNet-18",
        "3, 3",
        f"+2.00 [{2 - half:+.2f}, {2 + half:+.2f}]",
        "+1.34",
        "held",
    ]
    text = markdown(table4_known)
    assert "### CIFAR-100: reproduction" in text and "### CIFAR-100: differences" in text
    assert "| LE-SAM+ − LE-SAM | PyramidNet-110 | 0, 3 | missing | +0.28 | — |" in text
    assert "Student's t interval of the mean" in text and "Welch's t interval" in text
    tex = latex(table4_known)
    assert tex.count(r"\begin{table}") == 2 and r"LE-SAM+ $-$ LE-SAM & WRN-28-10 & 2, 3 &" in tex
