"""A table's runs: the configs they need, their command lines, their Hydra multiruns and their folders."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from lesam.engine.run_id import register_resolver, run_id
from lesam.report.spec import Analysis, Table

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


@dataclass(frozen=True)
class Run:
    """One training run: a cell's overrides, a seed, and overrides added to every run (ARGS, smoke)."""

    overrides: tuple[str, ...]
    seed: int
    extra: tuple[str, ...] = ()

    @property
    def args(self) -> tuple[str, ...]:
        """train.py's arguments for this run."""
        return (*self.overrides, f"seed={self.seed}", *self.extra)


@dataclass(frozen=True)
class Multirun:
    """Runs that one `train.py -m` launches: fixed overrides, one swept key, the seeds."""

    fixed: tuple[str, ...]
    key: str
    values: tuple[str, ...]
    seeds: tuple[int, ...]
    extra: tuple[str, ...]

    @property
    def args(self) -> tuple[str, ...]:
        """train.py's arguments for the multirun."""
        swept = (f"{self.key}={','.join(self.values)}",) if self.key else ()
        return ("-m", *self.fixed, *swept, f"seed={','.join(map(str, self.seeds))}", *self.extra)


def runs(table: Table, seeds: Sequence[int] | None = None, extra: Callable[[tuple], tuple] | None = None) -> list[Run]:
    """Every run of `table` (the table's seeds unless `seeds`), each with `extra(its overrides)` appended."""
    seeds = table.seeds if seeds is None else tuple(seeds)
    return [Run(o, s, tuple(extra(o)) if extra else ()) for o in table.run_overrides() for s in seeds]


def multiruns(planned: Sequence[Run]) -> list[Multirun]:
    """Group runs into Hydra multiruns: runs that differ only in the value of their last override and the seed."""
    groups: dict[tuple, dict] = {}
    for run in planned:
        *fixed, last = run.overrides or ("",)
        key, _, value = last.partition("=")
        group = groups.setdefault((tuple(fixed), key, run.extra), {"values": {}, "seeds": {}})
        group["values"][value] = None
        group["seeds"][run.seed] = None
    return [
        Multirun(fixed, key, tuple(g["values"]) if key else (), tuple(g["seeds"]), extra)
        for (fixed, key, extra), g in groups.items()
    ]


def python() -> str:
    """This interpreter, as a path relative to the project when it lives inside it."""
    path = Path(sys.executable)
    try:
        return str(path.relative_to(ROOT)) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def train_argv(args: Sequence[str]) -> list[str]:
    """The command that runs train.py with `args`."""
    return [python(), "train.py", *args]


def analyze_argv(analysis: Analysis, folder: Path) -> list[str]:
    """The command that runs `analysis` on the checkpoint of the run in `folder`."""
    return [python(), "analyze.py", *analysis.overrides, f"checkpoint={folder / 'last.pt'}"]


def command_line(run: Run, analyses: Sequence[Analysis] = (), folder: Path | None = None) -> str:
    """One shell line that trains `run`, then runs each analysis of its checkpoint in `folder`."""
    parts = [shlex.join(train_argv(run.args))]
    parts += [shlex.join(analyze_argv(a, folder)) for a in analyses if folder is not None]
    return " && ".join(parts)


def _scalar_keys(config_name: str) -> set[str]:
    """Top-level keys of a primary config that hold values, not config groups (seed, output_root, ...)."""
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{config_name}.yaml"))
    return {k for k, v in config.items() if k not in ("defaults", "hydra") and not isinstance(v, dict)}


def missing_configs(table: Table, extra: Sequence[str] = ()) -> list[str]:
    """The config files that `table`'s runs and analyses choose (group=option) but that do not exist."""
    scalars = _scalar_keys("config") | _scalar_keys("analyze")
    choices = [o for overrides in table.run_overrides() for o in overrides]
    choices += [o for analysis in table.analyses for o in analysis.overrides] + list(extra)
    missing = []
    for override in dict.fromkeys(choices):
        key, _, option = override.lstrip("+~").partition("=")
        if "." in key or "/" in key or key in scalars or not option:
            continue
        path = CONFIGS / key / f"{option}.yaml"
        if not path.is_file():
            missing.append(str(path.relative_to(ROOT)))
    return missing


class Composer:
    """Compose train.py's and analyze.py's configs, many times over one Hydra initialisation."""

    def __init__(self) -> None:
        self._cache: dict[tuple, DictConfig] = {}

    def compose(self, overrides: Sequence[str], config_name: str = "config") -> DictConfig:
        """The config that `python <entry>.py <overrides>` would run (cached)."""
        key = (config_name, *overrides)
        if key not in self._cache:
            self._cache[key] = compose(config_name=config_name, overrides=list(overrides))
        return self._cache[key]

    def folder(self, run: Run) -> Path:
        """Where `run` writes: output_root / its run id."""
        cfg = self.compose(run.args)
        return Path(cfg.output_root) / run_id(cfg)


@contextmanager
def composer() -> Iterator[Composer]:
    """A Composer over configs/, with the run_id resolver registered."""
    register_resolver()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            yield Composer()
    finally:
        GlobalHydra.instance().clear()
