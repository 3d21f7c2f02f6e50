"""What `make tableN` does: list, launch or resume a table's runs, then write the table from run folders."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lesam.core.errors import UserError
from lesam.core.files import write_text
from lesam.report import launch
from lesam.report.aggregate import TableResult, collect
from lesam.report.bench import bench_status, read_bench
from lesam.report.cost import cost_note, epoch_times
from lesam.report.plan import (
    FINISHED,
    Composer,
    Run,
    RunState,
    adopted,
    command_line,
    composer,
    locate,
    missing_configs,
    runs,
)
from lesam.report.render import latex, markdown
from lesam.report.spec import Table
from lesam.report.tables import ALIASES, TABLES, table

DEFAULT_BENCH = Path("outputs/bench.json")  # where `make bench` writes, which Table 6 reads without BENCH


@dataclass
class Options:
    """The knobs of `make tableN`: DRY, FROM, GPUS, LAUNCHER, SEEDS, ARGS, OUT, BENCH and VARIANT."""

    dry: bool = False
    source: Path | None = None  # FROM: render from the run folders below this folder, launch nothing
    gpus: tuple[str, ...] = ()  # one run per GPU, each pinned to its device
    launcher: str | None = None  # a configs/hydra/launcher option for the multiruns (e.g. slurm)
    seeds: tuple[int, ...] | None = None  # instead of the table's seeds
    extra: tuple[str, ...] = ()  # overrides added to every run
    out: Path = Path("tables")
    bench: Path | None = None  # BENCH: a benchmark JSON, for Table 6 and for the GPU-hours of a dry run
    runner: launch.Runner = field(default=launch.subprocess_runner)
    variant: str = "paper"  # the recipe variant every run trains with (configs/recipe_variant)

    def overrides(self, t: Table) -> tuple[str, ...]:
        """What every run of `t` gets after its cell's overrides: the variant's choice, then ARGS."""
        return t.variant_overrides(self.variant) + self.extra


def resolve(name: str) -> Table:
    """The table called `name`, or a UserError listing the names."""
    try:
        return table(name)
    except KeyError:
        names = ", ".join([*TABLES, *ALIASES])
        raise UserError(f"unknown table '{name}'; choose one of: {names} (or all)") from None


def check_configs(t: Table, extra: Sequence[str]) -> None:
    """Stop with one line when a config that the table's runs choose does not exist yet."""
    missing = missing_configs(t, extra)
    if missing:
        raise UserError(f"{t.name} needs {', '.join(missing)}, which this checkout does not have yet")


def dry_run(t: Table, options: Options) -> None:
    """Print one line per run, the full command that runs it (and its analyses), or a comment naming the
    finished folder it adopts."""
    planned = runs(t, options.seeds, lambda _: options.overrides(t))
    with composer() as c:
        homes = adopted(planned, c)
        for r in planned:
            if r in homes:
                print(f"# {adoption(homes[r], c.folder(r.args))}")
            else:
                print(command_line(r, t.analyses, c.folder(r.args) if t.analyses else None))
        cost = f", {cost_note(planned, c, epoch_times(options.bench))}" if planned else ""
    print(f"{t.name}: {len(planned)} runs{cost} (dry run: nothing launched)", file=sys.stderr)


def launch_runs(t: Table, planned: list[Run], c: Composer, options: Options) -> list[str]:
    """Launch or resume the runs, then the pending analyses; the commands that failed.

    A run that a finished folder under another name holds is adopted, not trained again (Composer.home).
    """
    if not planned:
        return []
    homes = adopted(planned, c)
    for run, home in homes.items():
        print(adoption(home, c.folder(run.args)), file=sys.stderr)
    if options.gpus:
        return launch.per_gpu(planned, c, options.gpus, t.analyses, options.runner)
    failed = launch.sequential([r for r in planned if r not in homes], options.launcher, options.runner)
    return failed + launch.analyses(planned, c, t.analyses, options.runner)


def adoption(found: Path, own: Path) -> str:
    """The line that says a finished folder stands for a run's own folder."""
    return f"adopted {found} for {own}: the same run, finished; not trained again"


def build(t: Table, options: Options) -> tuple[TableResult, list[str]]:
    """Launch (unless FROM), locate the runs, and collect the table; also the commands that failed."""
    planned = runs(t, options.seeds, lambda _: options.overrides(t))
    with composer() as c:
        failed = [] if options.source is not None else launch_runs(t, planned, c, options)
        states = locate(planned, c, options.source)
    return collect_table(t, states, options.seeds, options.bench or DEFAULT_BENCH), failed


def collect_table(t: Table, states: list[RunState], seeds: Sequence[int] | None, bench: Path) -> TableResult:
    """The table from its located runs, and for a table of benchmark cells from the JSON at `bench`."""
    timed = any(cell.bench for cell in t.cells)
    result = collect(t, states, seeds, read_bench(bench) if timed and bench.is_file() else {})
    if timed and (reason := bench_status(bench)):
        result.notes.insert(0, reason)
    return result


def write_table(result: TableResult, out: Path, variant: str = "paper") -> list[Path]:
    """Write <out>/<table>.md and .tex (<table>_<variant>.* for a recipe variant but the paper's); their paths."""
    stem = result.table.name if variant == "paper" else f"{result.table.name}_{variant}"
    paths = [out / f"{stem}.md", out / f"{stem}.tex"]
    write_text(paths[0], markdown(result))
    write_text(paths[1], latex(result))
    return paths


def variant_note(t: Table, variant: str) -> str:
    """The note that says which recipe a variant's table was trained with and where its differences are listed."""
    return (
        f"Trained with recipe_variant={variant} (configs/recipe_variant/{variant}.yaml), not the paper's appendix F; "
        f"`make recipes TABLE={t.name} VARIANT={variant} SOURCES=1` lists each value it changes, with both sources."
    )


def make_table(name: str, options: Options) -> int:
    """`make <name>`: 0 when every launched command succeeded, 1 otherwise (the table is written either way)."""
    if options.source is not None and not options.source.is_dir():
        raise UserError(f"FROM={options.source} is not a folder; pass the folder that holds the run folders")
    if options.bench is not None and not options.bench.is_file():
        raise UserError(f"BENCH={options.bench} is not a file; pass the JSON that scripts/bench.py wrote (make bench)")
    names = list(TABLES) if name == "all" else [resolve(name).name]
    if name == "all" and not (options.dry or options.source is not None):
        raise UserError("'all' only lists (DRY=1) or renders (FROM=DIR); launch the tables one by one")
    status = 0
    for t in (TABLES[n] for n in names):
        try:
            check_configs(t, options.overrides(t))
        except UserError as error:
            if name != "all":
                raise
            print(f"skipped: {error}", file=sys.stderr)
            continue
        if options.dry:
            dry_run(t, options)
            continue
        result, failed = build(t, options)
        if options.variant != "paper":
            result.notes.insert(0, variant_note(t, options.variant))
        paths = write_table(result, options.out, options.variant)
        print(markdown(result))
        unfinished = len(result.states) - result.count(FINISHED)
        summary = f"{t.name}: wrote {', '.join(map(str, paths))}"
        summary += f"; {unfinished} of {len(result.states)} runs without a result" if unfinished else ""
        print(summary, file=sys.stderr)
        for command in failed:
            print(f"failed: {command}", file=sys.stderr)
        status = max(status, 1 if failed else 0)
    return status
