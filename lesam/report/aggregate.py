"""Run folders in, cell statistics out: each cell's numbers over seeds, beside the paper's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from lesam.report.paper import PaperValue, paper_tables
from lesam.report.plan import FINISHED, RunState
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
        return sum(self.values.values()) / self.n if self.n else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1) over the runs; None for fewer than two."""
        if self.n < 2:
            return None
        mean = self.mean
        return math.sqrt(sum((v - mean) ** 2 for v in self.values.values()) / (self.n - 1))


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
    expected = 1 if any(c.bench for c in block.cells) else len(seeds)
    labels: dict[str, tuple[str, str]] = {}  # our column label -> (spec column, name in the readings)
    for column in block.columns:
        if column == block.average:
            continue
        names = [n for (_, col), r in readings.items() if col == column for v in r.values() for n in v]
        for name in dict.fromkeys(names) or [""]:
            labels[f"{column} · {name}" if name else column] = (column, name)
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
    return BlockResult(block.title, block.rows, columns, stats, values)


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
    notes = list(table.notes) + (list(paper.notes) if paper else [])
    return TableResult(table, paper.source if paper else table.title, blocks, list(states), notes)
