"""`make smoke`: every experiment preset for 2 steps at tiny size, then every table rendered end to end.

Runs go in-process on the CPU, on synthetic data, with the models shrunk. A preset is made tiny by
SMOKE (configs/debug/smoke.yaml, the tests' settings too, and two steps on 8x8 images), plus its
model's entry in TINY_MODELS and, for a preset that needs more, its entry in PRESETS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from lesam.analysis.run import run_analysis
from lesam.core.errors import UserError
from lesam.core.paths import CONFIGS
from lesam.engine.run import run as train
from lesam.report.launch import pending_analyses
from lesam.report.make_table import check_configs, collect_table, write_table
from lesam.report.plan import Composer, Run, composer, locate, runs
from lesam.report.spec import Analysis
from lesam.report.tables import TABLES

SMOKE = ("debug=smoke", "trainer.max_steps=2", "dataset.image_size=8")
TINY_MODELS: dict[str, tuple[str, ...]] = {
    "resnet18": ("model.width=4",),
    "wrn28_10": ("model.depth=10", "model.widen_factor=1"),
    "pyramidnet110": ("model.depth=8", "model.alpha=12"),
    "small_cnn": ("model.width=8",),
    "mlp": ("model.hidden=[32]",),
    "resnet32": ("model.width=4",),
    "preact_resnet18": ("model.width=4",),
    "resnet18_imagenet": ("model.weights=null",),
    "resnet50": ("model.weights=null",),
    "resnet101": ("model.weights=null",),
    "vit_b16": (
        "model.weights=null",
        "model.patch_size=4",
        "model.layers=1",
        "model.heads=2",
        "model.hidden_dim=16",
        "model.mlp_dim=32",
    ),
}
PRESETS: dict[str, tuple[str, ...]] = {  # preset -> the overrides it needs besides SMOKE
    # a long tail (its recipe's values are per imbalance factor) thins 64 images to about 15, fewer
    # than one batch; 128 keep a batch's worth
    "cifar100_lt": ("dataset.imbalance_factor=100", "dataset.num_train=128"),
    # an untrained ResNet-101 on 8x8 images starts with gradient norms near 2e4: the recipe's lr 0.2
    # sends the second step's weights to a nan test loss, and the run is (rightly) marked diverged
    "imagenet_r101": ("optimizer.lr=0.01",),
}
ANALYSIS = ("device=cpu",)
Progress = Callable[[str], None]  # told one line as each run ends


def presets() -> list[str]:
    """Every experiment preset in configs/experiment."""
    return sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def preset_of(overrides: Sequence[str]) -> str | None:
    """The experiment preset an override list chooses, if any."""
    return next((o.partition("=")[2] for o in overrides if o.startswith("experiment=")), None)


class Shrinker:
    """The smoke overrides of a run: SMOKE, its preset's needs, its model's tiny size, and where it writes."""

    def __init__(self, c: Composer, output_root: Path) -> None:
        self.composer, self.output_root = c, output_root
        self._models: dict[tuple, str] = {}

    def model(self, overrides: Sequence[str]) -> str:
        """The model that `overrides` train (cached per preset and model choice)."""
        key = tuple(o for o in overrides if o.startswith(("experiment=", "model=")))
        if key not in self._models:
            self._models[key] = self.composer.compose(key).model.name
        return self._models[key]

    def __call__(self, overrides: Sequence[str]) -> tuple[str, ...]:
        preset = PRESETS.get(preset_of(overrides) or "", ())
        tiny = TINY_MODELS.get(self.model(overrides), ())
        return (*SMOKE, *preset, *tiny, f"output_root={self.output_root}")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: tiny tensors gain nothing from more, and lose much on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_in_process(cfg: DictConfig, folder: Path) -> dict:
    """Train (or skip, if finished) one run in this process."""
    return train(cfg, folder=folder)


@dataclass
class SmokeReport:
    """What the smoke did: runs of each preset, tables written, and what it skipped or failed, with why."""

    presets: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def quiet(line: str) -> None:
    """Say nothing (the default progress)."""


def smoke_presets(c: Composer, root: Path, names: Sequence[str], report: SmokeReport, say: Progress = quiet) -> None:
    """Two steps of each preset on its own."""
    shrink = Shrinker(c, root / "presets")
    for name in names:
        overrides = (f"experiment={name}",)
        try:
            cfg = c.compose((*overrides, *shrink(overrides)))
            folder = root / "presets" / name
            start = time.perf_counter()
            train_in_process(cfg, folder)
            report.presets[name] = folder
            say(f"preset {name}: 2 steps, {time.perf_counter() - start:.1f} s")
        except Exception as error:  # noqa: BLE001 - every preset is tried; each failure is reported with its cause
            report.failed[name] = f"{type(error).__name__}: {error}; give it smoke overrides in PRESETS ({__name__})"
            say(f"preset {name}: FAILED")


def smoke_table(c: Composer, root: Path, name: str, report: SmokeReport, seeds: int = 1, say: Progress = quiet) -> None:
    """The first `seeds` seeds of each of the table's runs in-process, its analyses, then the table from those
    folders (two seeds or more give the reproduction columns intervals)."""
    t = TABLES[name]
    planned = runs(t, seeds=t.seeds[:seeds], extra=Shrinker(c, root / "runs"))
    for number, run in enumerate(planned, 1):
        start = time.perf_counter()
        folder = smoke_run(c, run, t.analyses)
        say(f"{name} run {number}/{len(planned)}: {folder.name}, {time.perf_counter() - start:.1f} s")
    result = collect_table(t, locate(planned, c), t.seeds[:seeds], root / "bench.json")
    report.tables[name] = write_table(result, root / "tables")


def smoke_run(c: Composer, run: Run, todo: Sequence[Analysis]) -> Path:
    """Train one run of a table in-process, then its pending analyses; its folder."""
    folder = c.folder(run.args)
    train_in_process(c.compose(run.args), folder)
    for analysis in pending_analyses(run, folder, todo):
        checkpoint = f"checkpoint={folder / 'last.pt'}"
        run_analysis(c.compose((*analysis.overrides, checkpoint, *ANALYSIS), config_name="analyze"))
    return folder


def smoke(
    root: Path,
    tables: Sequence[str] | None = None,
    preset_names: Sequence[str] | None = None,
    seeds: int = 1,
    say: Progress = quiet,
) -> SmokeReport:
    """Run the presets and render the tables (all of each by default, the tables' runs with `seeds` seeds)
    under `root`, saying each run as it ends."""
    report = SmokeReport()
    with composer() as c, one_thread():
        smoke_presets(c, Path(root), presets() if preset_names is None else preset_names, report, say)
        for name in TABLES if tables is None else tables:
            try:
                check_configs(TABLES[name], ())
            except UserError as error:
                report.skipped[name] = str(error)
                continue
            try:
                smoke_table(c, Path(root), name, report, seeds, say)
            except Exception as error:  # noqa: BLE001 - every table is tried; each failure is reported
                report.failed[name] = f"{type(error).__name__}: {error}"
    return report
