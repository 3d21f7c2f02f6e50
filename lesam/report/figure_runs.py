"""The runs a figure needs, found by the folder name their config gives, and what they hold.

A figure names each run by the train.py overrides that make it. Composing those overrides gives
the run's config and so its folder (`<output root>/<run id>`, the name train.py would choose),
whether it was trained alone or in a multirun sweep.
"""

from __future__ import annotations

import itertools
import json
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from lesam.engine.run_folder import RunFolder, read_lines
from lesam.engine.run_id import register_resolver, run_id

PROJECT = Path(__file__).resolve().parents[2]
CONFIGS = PROJECT / "configs"
DEFAULT_ROOT = Path("outputs")


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
        """Whether the run wrote final.json."""
        return RunFolder(self.folder).is_finished()

    @property
    def status(self) -> str:
        """finished, unfinished (a folder without final.json) or missing."""
        return "finished" if self.finished else "unfinished" if self.folder.exists() else "missing"

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


def override_key(override: str) -> str:
    """The key or group an override sets ('optimizer.delta' for 'optimizer.delta=0.3')."""
    return OverridesParser.create().parse_override(override).key_or_group


def merge_overrides(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """`base` with every key that `extra` also sets replaced: `extra` goes last and wins."""
    replaced = {override_key(o) for o in extra}
    return [o for o in base if override_key(o) not in replaced] + list(extra)


def sweep_runs(name: str) -> list[tuple[str, ...]]:
    """The override lists of every job of the multirun preset configs/sweep/<name>.yaml."""
    params = OmegaConf.load(CONFIGS / "sweep" / f"{name}.yaml").hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
        for o in parsed
    ]
    return list(itertools.product(*axes))


@contextmanager
def hydra_configs() -> Iterator[None]:
    """Hydra initialised on the project's configs/ for the block (compose() works inside)."""
    register_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        yield


def resolve(specs: Sequence[RunSpec], extra: Sequence[str], root: Path) -> list[FigureRun]:
    """Each spec with the user's overrides applied, its composed config and its folder under `root`."""
    runs = []
    with hydra_configs():
        for spec in specs:
            overrides = merge_overrides(spec.overrides, extra)
            cfg = compose(config_name="config", overrides=overrides)
            runs.append(FigureRun(spec.series, overrides, cfg, Path(root) / run_id(cfg)))
    return runs


def python() -> str:
    """This interpreter, relative to the project when it lives inside it (.venv/bin/python)."""
    path = Path(sys.executable)
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else str(path)


def train_command(run: FigureRun, root: Path) -> str:
    """The command that trains (or resumes) the run into the folder the figure reads."""
    where = [] if Path(root) == DEFAULT_ROOT else [f"output_root={root}"]
    return shlex.join([python(), "train.py", *run.overrides, *where])


def analysis_command(run: FigureRun, analysis: str, extra: Sequence[str]) -> str:
    """The command that writes <run folder>/<analysis>.json."""
    checkpoint = f"checkpoint={run.folder / 'last.pt'}"
    return shlex.join([python(), "analyze.py", f"analysis={analysis}", checkpoint, *extra])
