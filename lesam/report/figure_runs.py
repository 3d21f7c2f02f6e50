"""The runs a figure needs, resolved through the planner to their configs and folders, and what they hold."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from lesam.core.run_folder import RunFolder, read_lines
from lesam.report.plan import DEFAULT_ROOT, analyze_argv, composer, merge_overrides, train_argv


@dataclass(frozen=True)
class RunSpec:
    """One run of a figure: the series it belongs to in the plot and the overrides that train it."""

    series: str
    overrides: tuple[str, ...]


@dataclass
class FigureRun:
    """A run spec resolved to its config and folder; results are read from the folder on demand."""

    series: str
    overrides: list[str]
    cfg: DictConfig
    folder: Path
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the run wrote final.json and did not diverge."""
        return RunFolder(self.folder).is_finished() and not self.diverged

    @property
    def diverged(self) -> bool:
        """Whether final.json says the run diverged (it is left out of the figure)."""
        return RunFolder(self.folder).is_diverged()

    @property
    def status(self) -> str:
        """finished, diverged, unfinished (a folder without final.json) or missing."""
        if not RunFolder(self.folder).is_finished():
            return "unfinished" if self.folder.exists() else "missing"
        return "diverged" if self.diverged else "finished"

    @property
    def final(self) -> dict:
        """final.json."""
        return self._read("final", lambda: RunFolder(self.folder).read_final())

    @property
    def metrics(self) -> list[dict]:
        """metrics.jsonl, one dict per epoch."""
        return self._read("metrics", lambda: RunFolder(self.folder).read_metrics())

    @property
    def rho(self) -> list[dict]:
        """rho.jsonl, one dict of per-step radii per epoch."""
        return self._read("rho", lambda: read_lines(RunFolder(self.folder).rho))

    def analysis(self, name: str) -> dict:
        """<run folder>/<name>.json, written by `python analyze.py analysis=<name>`."""
        return self._read(name, lambda: json.loads((self.folder / f"{name}.json").read_text()))

    def _read(self, key: str, load):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]


def resolve(specs: Sequence[RunSpec], extra: Sequence[str], root: Path) -> list[FigureRun]:
    """Each spec with the user's overrides (and `root` as output_root) applied, its config and its folder
    (Composer.home: its own, or a finished one of the same run that it adopts)."""
    where = [] if Path(root) == DEFAULT_ROOT else [f"output_root={root}"]
    runs = []
    with composer() as c:
        for spec in specs:
            overrides = merge_overrides(spec.overrides, [*extra, *where])
            runs.append(FigureRun(spec.series, overrides, c.compose(overrides), c.home(overrides)))
    return runs


def train_command(run: FigureRun) -> str:
    """The command that trains (or resumes) the run into the folder the figure reads."""
    return shlex.join(train_argv(run.overrides))


def analysis_command(run: FigureRun, analysis: str, extra: Sequence[str]) -> str:
    """The command that writes <run folder>/<analysis>.json."""
    return shlex.join(analyze_argv([f"analysis={analysis}", *extra], run.folder))
