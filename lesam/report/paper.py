"""The paper's own numbers, read from paper_numbers.yaml (one file, each number with its table and cell)."""

from __future__ import annotations

from dataclasses import dataclass
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
    """One table of the paper: where it is, notes on it, and its cells by block, row and column."""

    source: str
    notes: tuple[str, ...]
    blocks: dict[str, dict[str, dict[str, PaperValue]]]

    def value(self, block: str, row: str, column: str) -> PaperValue | None:
        """The paper's value of a cell; None when the paper has no such cell."""
        return self.blocks.get(block, {}).get(row, {}).get(column)


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
        )
        for name, entry in raw.items()
    }
