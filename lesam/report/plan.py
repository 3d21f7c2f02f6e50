"""The one planner of runs: compose a run's config, name its folder, write its command, find its folder.

Tables, figures and the smoke name each run by the train.py overrides that make it. Composing
those overrides gives the run's config and so its folder (`<output root>/<run id>`, the name
train.py chooses), whether it was trained alone or in a multirun sweep.
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from lesam.core.paths import CONFIGS, PROJECT
from lesam.core.resolvers import register_resolvers
from lesam.core.run_folder import RunFolder
from lesam.core.run_id import identity_digest, run_id
from lesam.report.spec import Analysis, Table

log = logging.getLogger("lesam")
DEFAULT_ROOT = Path("outputs")  # train.py's output_root
FINISHED, UNFINISHED, NOT_STARTED = "finished", "unfinished", "not started"
DIVERGED = "diverged"  # finished without a result to count: final.json says the run diverged


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
    """Group runs into Hydra multiruns: runs that differ only in the value of their last override and the seed.

    A multirun trains every value with every seed, so values join one only when they have the same seeds.
    """
    groups: dict[tuple, dict[str, dict[int, None]]] = {}
    for run in planned:
        *fixed, last = run.overrides or ("",)
        key, _, value = last.partition("=")
        groups.setdefault((tuple(fixed), key, run.extra), {}).setdefault(value, {})[run.seed] = None
    grouped: dict[tuple, dict[str, None]] = {}
    for (fixed, key, extra), seeds_of in groups.items():
        for value, seeds in seeds_of.items():
            grouped.setdefault((fixed, key, extra, tuple(seeds)), {})[value] = None
    return [
        Multirun(fixed, key, tuple(values) if key else (), seeds, extra)
        for (fixed, key, extra, seeds), values in grouped.items()
    ]


def python() -> str:
    """This interpreter, as a path relative to the project when it lives inside it (.venv/bin/python)."""
    path = Path(sys.executable)
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else str(path)


def train_argv(args: Sequence[str]) -> list[str]:
    """The command that runs train.py with `args`."""
    return [python(), "train.py", *args]


def analyze_argv(overrides: Sequence[str], folder: Path) -> list[str]:
    """The command that runs the analysis `overrides` choose on the checkpoint of the run in `folder`."""
    return [python(), "analyze.py", *overrides, f"checkpoint={folder / 'last.pt'}"]


def command_line(run: Run, analyses: Sequence[Analysis] = (), folder: Path | None = None) -> str:
    """One shell line that trains `run`, then runs each analysis of its checkpoint in `folder`."""
    parts = [shlex.join(train_argv(run.args))]
    parts += [shlex.join(analyze_argv(a.overrides, folder)) for a in analyses if folder is not None]
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
            missing.append(str(path.relative_to(PROJECT)))
    return missing


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


def split_seed(overrides: Sequence[str]) -> tuple[tuple[str, ...], int | None]:
    """The overrides without their one `seed=<n>`, and n; (overrides, None) unless exactly one sets the seed."""
    seeds = [o for o in overrides if o.startswith("seed=")]
    if len(seeds) != 1 or not re.fullmatch(r"seed=(0|[1-9][0-9]*)", seeds[0]):
        return tuple(overrides), None
    return tuple(o for o in overrides if o != seeds[0]), int(seeds[0].removeprefix("seed="))


class Composer:
    """Compose train.py's and analyze.py's configs, many times over one Hydra initialisation."""

    def __init__(self) -> None:
        self._cache: dict[tuple, DictConfig] = {}
        self._indexes: dict[Path, RunIndex] = {}

    def compose(self, overrides: Sequence[str], config_name: str = "config") -> DictConfig:
        """The config that `python <entry>.py <overrides>` would run (cached).

        Runs that differ only in `seed=<n>` share one Hydra composition (the slow part): train.py's `seed` is
        a plain value that no config interpolates, so setting it on a copy gives what Hydra would compose.
        """
        key = (config_name, *overrides)
        if key not in self._cache:
            others, seed = split_seed(overrides) if config_name == "config" else (overrides, None)
            if seed is None:
                self._cache[key] = compose(config_name=config_name, overrides=list(overrides))
            else:
                self._cache[key] = copy.deepcopy(self.compose(others))
                self._cache[key].seed = seed
        return self._cache[key]

    def folder(self, args: Sequence[str]) -> Path:
        """Where train.py with `args` writes: output_root / its run id."""
        cfg = self.compose(args)
        return Path(cfg.output_root) / run_id(cfg)

    def find(self, args: Sequence[str], root: Path | None = None) -> tuple[Path, dict] | None:
        """The folder and saved config of the run that `args` make, found by what it computes below `root`
        (its own output_root by default), wherever below it and by whichever release it was written; None if
        there is none."""
        cfg = self.compose(args)
        base = Path(root) if root is not None else Path(cfg.output_root)
        if base not in self._indexes:
            self._indexes[base] = index_runs(base)
        return self._indexes[base].get(cfg)

    def home(self, args: Sequence[str]) -> Path:
        """The folder that holds the run `args` make: its own, unless a finished folder of the same run lies
        under another name below its output_root (trained by an earlier release, or moved): that one is adopted."""
        own = self.folder(args)
        found = self.find(args)
        if found is None or RunFolder(own).is_finished() or not RunFolder(found[0]).is_finished():
            return own
        return found[0]


@contextmanager
def composer() -> Iterator[Composer]:
    """A Composer over configs/, with the run_id resolver registered."""
    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            yield Composer()
    finally:
        GlobalHydra.instance().clear()


@dataclass
class RunIndex:
    """The run folders below one folder, by what they compute and by name."""

    by_identity: dict[str, tuple[Path, dict]]
    by_name: dict[str, tuple[Path, dict]]

    def get(self, cfg: DictConfig) -> tuple[Path, dict] | None:
        """The folder and saved config of the run `cfg` describes, or None.

        A finished folder of the same run first, under any name; else the run's own folder, named by its id
        (which its config wrote, though the weights file that config names may have moved since); else an
        unfinished folder of the same run under another name.
        """
        same = self.by_identity.get(identity_digest(cfg))
        if same is not None and RunFolder(same[0]).is_finished():
            return same
        return self.by_name.get(run_id(cfg)) or same


def index_runs(root: Path) -> RunIndex:
    """Every run folder below `root`, by the identity of its saved config and by its name.

    Of two folders of one run (a copy, or one trained by an earlier release), a finished one is taken.
    """
    index = RunIndex({}, {})
    for config_file in sorted(Path(root).glob("**/.hydra/config.yaml")):
        folder = config_file.parent.parent
        try:
            config = OmegaConf.load(config_file)
            key = identity_digest(config)
        except Exception as error:  # noqa: BLE001 - an unreadable folder is reported and left out, not fatal
            log.warning("left out %s: its config cannot be read (%s)", folder, error)
            continue
        entry = (folder, OmegaConf.to_container(config, resolve=True))
        _keep(index.by_identity, key, entry)
        _keep(index.by_name, folder.name, entry)
    return index


def _keep(found: dict[str, tuple[Path, dict]], key: str, entry: tuple[Path, dict]) -> None:
    """Put `entry` under `key` unless a finished folder is there already."""
    if key not in found or not RunFolder(found[key][0]).is_finished():
        found[key] = entry


@dataclass
class RunState:
    """Where a planned run is and whether it has finished."""

    run: Run
    folder: Path | None
    config: dict | None
    own: Path | None = None  # the folder train.py writes the run into

    @property
    def status(self) -> str:
        """finished (final.json written), diverged (final.json says so), unfinished (a folder without it) or
        not started."""
        if self.folder is None:
            return NOT_STARTED
        folder = RunFolder(self.folder)
        if not folder.is_finished():
            return UNFINISHED
        return DIVERGED if folder.is_diverged() else FINISHED


def locate(planned: Sequence[Run], composer: Composer, root: Path | None = None) -> list[RunState]:
    """Find each planned run's folder by what it computes, below `root` or else below its own output_root."""
    states = []
    for run in planned:
        folder, config = composer.find(run.args, root) or (None, None)
        states.append(RunState(run, folder, config, composer.folder(run.args)))
    return states


def adopted(planned: Sequence[Run], composer: Composer) -> dict[Run, Path]:
    """The runs that a finished folder under another name holds (Composer.home), each with that folder."""
    homes = {run: composer.home(run.args) for run in planned}
    return {run: home for run, home in homes.items() if home != composer.folder(run.args)}
