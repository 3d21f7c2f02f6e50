"""Run folders in, cell statistics out: each cell's numbers over seeds, beside the paper's."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from lesam.report.confidence import Interval, difference_interval, mean_interval, ordering
from lesam.report.paper import PaperTable, PaperValue, paper_tables
from lesam.report.plan import DIVERGED, FINISHED, RunState
from lesam.report.spec import Block, Cell, Reading, Table


@dataclass
class Stat:
    """One cell of ours: the value of each finished run by seed, and how many runs the cell has."""

    values: dict[int, float]
    expected: int

    @property
    def n(self) -> int:
        """How many runs gave a value."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        """Mean over the runs that gave a value; None if none did."""
        return statistics.mean(self.values.values()) if self.n else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1) over the runs; None for fewer than two."""
        return statistics.stdev(self.values.values()) if self.n >= 2 else None

    @property
    def interval(self) -> Interval | None:
        """The 95% t interval of the mean; None for fewer than two runs."""
        return mean_interval(list(self.values.values()))


@dataclass
class Difference:
    """method - baseline at one label of the other axis: our two cells, and the paper's difference."""

    method: str
    baseline: str
    label: str
    ours: tuple[Stat, Stat]  # the method's cell, the baseline's
    paper: float | None

    @property
    def mean(self) -> float | None:
        """Our difference of the two means; None when a cell has no run."""
        means = [stat.mean for stat in self.ours]
        return None if None in means else means[0] - means[1]

    @property
    def interval(self) -> Interval | None:
        """Welch's 95% t interval of the difference; None when a cell has fewer than two runs."""
        return difference_interval(*(list(stat.values.values()) for stat in self.ours))

    @property
    def ordering(self) -> str:
        """held, reversed, unresolved, one seed, or no verdict (see confidence.ordering)."""
        return ordering(min(stat.n for stat in self.ours), self.interval, self.paper)


@dataclass
class BlockResult:
    """A block as rendered: rows, column labels, our statistic and the paper's value per cell.

    A statistic of None marks a row quoted from other work (not run here).
    """

    title: str
    rows: tuple[str, ...]
    columns: list[str]
    stats: dict[tuple[str, str], Stat | None]
    paper: dict[tuple[str, str], PaperValue | None]
    paper_only: bool = False  # the paper's numbers that match no cell of ours
    seeded: bool = True  # cells of runs over seeds (not one benchmark measurement each)
    differences: list[Difference] = field(default_factory=list)


@dataclass
class TableResult:
    """A table as rendered, with the state of each of its runs and notes on both sides."""

    table: Table
    source: str
    blocks: list[BlockResult]
    states: list[RunState]
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many runs have `status`."""
        return sum(s.status == status for s in self.states)


def _normalised(reading: Reading) -> dict[str, float]:
    """A reading as named values: '' names a single value."""
    if reading is None:
        return {}
    return reading if isinstance(reading, dict) else {"": reading}


def _cell_readings(cell: Cell, states: dict[tuple, RunState], seeds: Sequence[int], bench: dict) -> dict:
    """Seed -> named values of the cell's finished runs (the benchmark's one measurement for Table 6)."""
    if cell.bench is not None:
        return {0: _normalised(bench.get(cell.bench))}
    readings = {}
    for seed in seeds:
        state = states.get((cell.overrides, seed))
        if state is not None and state.status == FINISHED:
            readings[seed] = _normalised(cell.metric.read(state.folder, state.config))
    return readings


def block_result(
    table: Table, block: Block, states: dict[tuple, RunState], seeds: Sequence[int], bench: dict
) -> BlockResult:
    """Our statistics and the paper's values for every cell of `block`, named columns expanded."""
    paper = paper_tables().get(table.name)
    by_cell = {(c.row, c.column): c for c in block.cells}
    readings = {key: _cell_readings(c, states, seeds, bench) for key, c in by_cell.items() if not _quoted(c)}
    seeded = not any(c.bench for c in block.cells)
    expected = len(seeds) if seeded else 1
    labels: dict[str, tuple[str, str]] = {}  # our column label -> (spec column, name in the readings)
    for column in block.columns:
        if column == block.average:
            continue
        names = [n for (_, col), r in readings.items() if col == column for v in r.values() for n in v]
        for name in dict.fromkeys(names) or [""]:
            labels[_label(column, name)] = (column, name)
    stats: dict[tuple[str, str], Stat | None] = {}
    values: dict[tuple[str, str], PaperValue | None] = {}
    for row in block.rows:
        for label, (column, name) in labels.items():
            cell = by_cell.get((row, column))
            quoted = cell is None or _quoted(cell)
            per_seed = readings.get((row, column), {})
            stats[row, label] = None if quoted else Stat(_named(per_seed, name), expected)
            values[row, label] = paper.value(block.title, row, column) if paper else None
        if block.average:
            stats[row, block.average] = _average(row, block, readings, seeds, expected)
            values[row, block.average] = paper.value(block.title, row, block.average) if paper else None
    columns = list(labels) + ([block.average] if block.average else [])
    result = BlockResult(block.title, block.rows, columns, stats, values, seeded=seeded)
    result.differences = [d for pair in block.comparisons for d in _differences(result, block, labels, pair, paper)]
    return result


def _label(column: str, name: str) -> str:
    """Our column label of a spec column's named value ('' names a single value)."""
    return f"{column} · {name}" if name else column


def _differences(
    result: BlockResult, block: Block, labels: dict, pair: tuple[str, str], paper: PaperTable | None
) -> list[Difference]:
    """method - baseline at each label of the other axis of `block` (methods as rows or as columns)."""
    method, baseline = pair
    if method in block.rows and baseline in block.rows:
        cells = [(label, (method, label), (baseline, label)) for label in result.columns]
    elif method in block.columns and baseline in block.columns:
        cells = [
            (_label(row, name), (row, label), (row, _label(baseline, name)))
            for row in block.rows
            for label, (column, name) in labels.items()
            if column == method and (row, _label(baseline, name)) in result.stats  # the baseline has that value
        ]
    else:
        raise ValueError(f"{block.title}: {method} and {baseline} are not both rows or both columns")
    differences = []
    for label, ours, theirs in cells:
        cited = [result.paper[ours], result.paper[theirs]]
        if all(v is not None and v.mean is not None for v in cited):
            printed = cited[0].mean - cited[1].mean
        else:
            printed = paper.stated_difference(block.title, method, baseline, label) if paper else None
        differences.append(Difference(method, baseline, label, (result.stats[ours], result.stats[theirs]), printed))
    return differences


def _quoted(cell: Cell) -> bool:
    return cell.overrides is None and cell.bench is None


def _named(per_seed: dict[int, dict[str, float]], name: str) -> dict[int, float]:
    return {seed: v[name] for seed, v in per_seed.items() if name in v}


def _average(row: str, block: Block, readings: dict, seeds: Sequence[int], expected: int) -> Stat:
    """Per seed, the mean of the row's other columns; a seed counts only when every column has its value."""
    columns = [c for c in block.columns if c != block.average]
    values = {}
    for seed in seeds:
        row_values = [readings.get((row, c), {}).get(seed, {}).get("") for c in columns]
        if all(v is not None for v in row_values):
            values[seed] = sum(row_values) / len(row_values)
    return Stat(values, expected)


def collect(
    table: Table, states: Sequence[RunState], seeds: Sequence[int] | None = None, bench: dict | None = None
) -> TableResult:
    """The whole table from the located runs (and, for Table 6, the benchmark's measurements)."""
    seeds = table.seeds if seeds is None else tuple(seeds)
    by_key = {(s.run.overrides, s.run.seed): s for s in states}
    blocks = [block_result(table, b, by_key, seeds, bench or {}) for b in table.blocks]
    paper = paper_tables().get(table.name)
    ours = {b.title for b in table.blocks}
    for title, rows in paper.blocks.items() if paper else ():
        if title not in ours:  # the paper's numbers that match no cell of ours, shown as printed
            columns = list(dict.fromkeys(c for cells in rows.values() for c in cells))
            stats = {(r, c): None for r in rows for c in columns}
            values = {(r, c): rows[r].get(c) for r, c in stats}
            blocks.append(BlockResult(title, tuple(rows), columns, stats, values, paper_only=True))
    notes = _diverged_note(states) + list(table.notes) + (list(paper.notes) if paper else [])
    return TableResult(table, paper.source if paper else table.title, blocks, list(states), notes)


def _diverged_note(states: Sequence[RunState]) -> list[str]:
    """One note naming the runs that diverged, which no cell counts; none if no run did."""
    folders = [s.folder.name for s in states if s.status == DIVERGED]
    if not folders:
        return []
    runs = "1 run" if len(folders) == 1 else f"{len(folders)} runs"
    return [
        f"Left out: {runs} diverged (a non-finite test loss or weights at the end; final.json says so) and "
        f"count in no cell: {', '.join(folders)}."
    ]
