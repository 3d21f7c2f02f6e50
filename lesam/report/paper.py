"""The paper's own numbers, read from paper_numbers.yaml (one file, each number with its table and cell)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


@dataclass(frozen=True)
class PaperValue:
    """A number as the paper prints it: mean, and std where the paper gives one; mean None = not stated."""

    mean: float | None
    std: float | None = None


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper: where it is, notes on it, its cells by block, row and column, and the
    differences its text states where the cells were lost, by (block, method, baseline, other label)."""

    source: str
    notes: tuple[str, ...]
    blocks: dict[str, dict[str, dict[str, PaperValue]]]
    differences: dict[tuple[str, str, str, str], float] = field(default_factory=dict)

    def value(self, block: str, row: str, column: str) -> PaperValue | None:
        """The paper's value of a cell; None when the paper has no such cell."""
        return self.blocks.get(block, {}).get(row, {}).get(column)

    def stated_difference(self, block: str, method: str, baseline: str, label: str) -> float | None:
        """method - baseline at `label` of the other axis as the paper's text states it; None if it does not."""
        return self.differences.get((block, method, baseline, label))


def _differences(entries: list[dict] | None) -> dict[tuple[str, str, str, str], float]:
    """The stated differences, one per (block, method, baseline, other label)."""
    return {
        (e["block"], e["method"], e["baseline"], str(label)): float(v)
        for e in entries or ()
        for label, v in e["values"].items()
    }


def _value(raw: object) -> PaperValue:
    if raw is None:
        return PaperValue(None)
    if isinstance(raw, list):
        return PaperValue(float(raw[0]), float(raw[1]))
    return PaperValue(float(raw))


@cache
def paper_tables() -> dict[str, PaperTable]:
    """Every table of paper_numbers.yaml by our table name."""
    raw = yaml.safe_load(PAPER_NUMBERS.read_text())
    return {
        name: PaperTable(
            entry["source"],
            tuple(entry.get("notes") or ()),
            {
                block: {str(row): {str(col): _value(v) for col, v in cells.items()} for row, cells in rows.items()}
                for block, rows in entry["blocks"].items()
            },
            _differences(entry.get("differences")),
        )
        for name, entry in raw.items()
    }
