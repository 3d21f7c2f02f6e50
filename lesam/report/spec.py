"""What a paper table is: blocks of cells, each cell the runs behind it and where its number comes from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lesam.core.errors import UserError

# a cell's number for one run: a value, several named values (one column each), or None (not there)
Reading = float | dict[str, float] | None


@dataclass(frozen=True)
class Metric:
    """A number a run writes: `key` (dotted) of the JSON file `file` in its run folder.

    The value may be a number or a mapping of names to numbers; a mapping gives one column per name.
    """

    file: str = "final.json"
    key: str = "test_acc"

    def read(self, folder: Path, config: dict) -> Reading:
        """The value in `folder`, or None when the file or the key is not there."""
        return _reading(self.value(folder))

    def value(self, folder: Path) -> object:
        """The JSON value at `key` of `file` in `folder`, or None when the file or the key is not there."""
        path = folder / self.file
        if not path.is_file():
            return None
        value: object = json.loads(path.read_text())
        for part in self.key.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value


@dataclass(frozen=True)
class TargetDomainMean(Metric):
    """Single-source domain generalisation: the mean accuracy over every domain but the source."""

    key: str = "domain_acc"

    def read(self, folder: Path, config: dict) -> Reading:
        """Mean of the per-domain mapping without `dataset.source_domain`; None if a domain is missing."""
        per_domain = super().read(folder, config)
        if not isinstance(per_domain, dict):
            return None
        source = config.get("dataset", {}).get("source_domain")
        targets = [v for name, v in per_domain.items() if name != source]
        return sum(targets) / len(targets) if targets else None


@dataclass(frozen=True)
class AttackAccuracy(Metric):
    """Robustness: the accuracy under each attack of a run's pgd.json (`analyze.py analysis=pgd`)."""

    file: str = "pgd.json"
    key: str = "attacks"

    def read(self, folder: Path, config: dict) -> Reading:
        """{attack name: accuracy (%)} over the attacks the analysis ran; None if it has not run."""
        attacks = self.value(folder)
        if not isinstance(attacks, dict):
            return None
        return _reading({name: result.get("adv_acc") for name, result in attacks.items()})


def _reading(value: object) -> Reading:
    """A JSON value as a Reading: numbers stay, mappings keep their numeric entries, the rest is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        numbers = {str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        return numbers or None
    return None


TEST_ACC = Metric()


@dataclass(frozen=True)
class Cell:
    """One cell: the runs behind it (`overrides` of train.py, one run per seed) and its metric.

    overrides=None marks a row the paper quotes from other work: shown with the paper's number only.
    `bench` names a (model, optimizer) of the speed benchmark's JSON instead of runs (Table 6).
    """

    row: str
    column: str
    overrides: tuple[str, ...] | None = None
    metric: Metric = TEST_ACC
    bench: tuple[str, str] | None = None


@dataclass(frozen=True)
class Block:
    """A sub-table: rows by columns. `average` names a column holding each row's mean over the others.

    `comparisons`: (method, baseline) pairs of row labels, or of column labels, whose difference the table
    shows for each label of the other axis.
    """

    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[Cell, ...]
    average: str | None = None
    comparisons: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Analysis:
    """An analysis of each run's checkpoint (`analyze.py <overrides> checkpoint=...`) writing `<name>.json`."""

    name: str
    overrides: tuple[str, ...]

    @property
    def result_file(self) -> str:
        """The file the analysis writes into the run folder."""
        return f"{self.name}.json"


@dataclass(frozen=True)
class Table:
    """A paper table: its blocks, the seeds of every run, analyses to run after training, notes, and the
    recipe variants (configs/recipe_variant) its runs can train with."""

    name: str
    title: str
    blocks: tuple[Block, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    analyses: tuple[Analysis, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    variants: tuple[str, ...] = ("paper",)

    @property
    def cells(self) -> list[Cell]:
        """Every cell of every block."""
        return [cell for block in self.blocks for cell in block.cells]

    def variant_overrides(self, variant: str) -> tuple[str, ...]:
        """The overrides that train this table's runs with recipe variant `variant` (none for the paper's)."""
        if variant not in self.variants:
            known = ", ".join(self.variants)
            raise UserError(
                f"VARIANT={variant}: {self.name} has recipe variant {known}; choose one, or leave VARIANT out"
            )
        return () if variant == "paper" else (f"recipe_variant={variant}",)

    def run_overrides(self) -> list[tuple[str, ...]]:
        """The distinct override lists of the cells that are run, in table order (seed not included)."""
        return list(dict.fromkeys(c.overrides for c in self.cells if c.overrides is not None))
