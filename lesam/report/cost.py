"""What a table's runs cost, in GPU-hours: from measured epoch times where a benchmark JSON is given,
else from the paper's own times.

The paper's Table 6 times one CIFAR epoch (50k images) on one RTX 5090 for SAM and LE-SAM with
ResNet-18, WRN-28-10 and PyramidNet-110. The speed benchmark (scripts/bench.py) times SGD, SAM and
LE-SAM per model and path. A run is taken at its model's and optimizer's time on the benchmark's
`default` path (what a run takes with no speed switch), or on its fastest path where `default` was
not timed, and at the paper's time where the benchmark did not time its model. Either way, a run's
estimate is that time times its epochs, every other two-pass method taken at SAM's time and SGD (one
pass) at half of SAM's where it has no time of its own. A run outside those settings (other data,
models or step counts) has no time; neither has a table with such a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from lesam.report.bench import read_bench
from lesam.report.paper import paper_tables
from lesam.report.plan import Composer, Run
from lesam.report.tables import CIFAR, CIFAR_BACKBONES

ONE_PASS = ("sgd",)
LE_SAM = ("lesam", "lesam_plus")  # the same two passes; LE-SAM+ adds a few vector operations
PREFERRED_PATH = "path=default"


class EpochTimes:
    """Seconds per CIFAR epoch by (model, optimizer), where they come from, and the times that stand in for
    a model these have none of."""

    def __init__(self, times: dict[tuple[str, str], float], source: str, fallback: EpochTimes | None = None) -> None:
        self.times, self.source, self.fallback = times, source, fallback

    @classmethod
    def paper(cls) -> EpochTimes:
        """The paper's Table 6 (SAM and LE-SAM per backbone)."""
        table = paper_tables()["table6"]
        times = {}
        for model, name in CIFAR_BACKBONES.items():
            for optimizer, method in (("sam", "SAM"), ("lesam", "LE-SAM")):
                value = table.value("Time per epoch", f"{name} {method}", "s/epoch")
                if value is not None and value.mean is not None:
                    times[model, optimizer] = value.mean
        return cls(times, "the paper's Table 6 times (one RTX 5090)")

    @classmethod
    def measured(cls, path: Path) -> EpochTimes:
        """A benchmark JSON's times (the `default` path's, else the fastest path's); the paper's for other models."""
        times = {
            key: settings.get(PREFERRED_PATH, min(settings.values())) for key, settings in read_bench(path).items()
        }
        return cls(times, f"measured epoch times ({path})", fallback=cls.paper())

    def seconds(self, model: str, optimizer: str) -> tuple[float | None, str]:
        """Seconds per epoch of `model` trained with `optimizer`, and their source; None if there is no time."""
        if not any(m == model for m, _ in self.times):
            return self.fallback.seconds(model, optimizer) if self.fallback else (None, self.source)
        if (model, optimizer) in self.times:
            return self.times[model, optimizer], self.source
        two_pass = self.times.get((model, "lesam" if optimizer in LE_SAM else "sam"), self.times.get((model, "sam")))
        if two_pass is None:
            return None, self.source
        return (two_pass / 2 if optimizer in ONE_PASS else two_pass), self.source


def epoch_times(bench: Path | None) -> EpochTimes:
    """Measured times where a benchmark JSON is given, else the paper's."""
    return EpochTimes.paper() if bench is None else EpochTimes.measured(bench)


def run_hours(cfg: DictConfig, times: EpochTimes | None = None) -> tuple[float | None, str]:
    """The estimated GPU-hours of one whole run of `cfg` (the paper's times by default), and their source;
    None where there is no time for it."""
    times = times or EpochTimes.paper()
    if cfg.dataset.name not in CIFAR or cfg.trainer.get("steps") is not None:
        return None, times.source
    seconds, source = times.seconds(cfg.model.name, cfg.optimizer.name)
    return (None if seconds is None else seconds * cfg.trainer.epochs / 3600), source


def estimate(planned: Sequence[Run], composer: Composer, times: EpochTimes) -> tuple[float | None, Counter]:
    """The runs' GPU-hours (None where one of them has no time) and how many runs each source timed."""
    total, sources = 0.0, Counter()
    for run in planned:  # composed without the seed, which changes no cost: one config per cell
        hours, source = run_hours(composer.compose((*run.overrides, *run.extra)), times)
        if hours is None:
            return None, sources
        total += hours
        sources[source] += 1
    return total, sources


def gpu_hours(planned: Sequence[Run], composer: Composer, times: EpochTimes | None = None) -> float | None:
    """The estimated GPU-hours of the runs (the paper's times by default), or None where one has no time."""
    return estimate(planned, composer, times or EpochTimes.paper())[0]


def cost_note(planned: Sequence[Run], composer: Composer, times: EpochTimes | None = None) -> str:
    """'about 430 GPU-hours (from ...)', or why there is no estimate."""
    times = times or EpochTimes.paper()
    hours, sources = estimate(planned, composer, times)
    if hours is None:
        return "GPU-hours not estimated (no time for one of its runs)"
    if len(sources) == 1:
        return f"about {hours:.0f} GPU-hours (from {next(iter(sources))})"
    parts = "; ".join(f"{n} runs from {source}" for source, n in sources.most_common())
    return f"about {hours:.0f} GPU-hours ({parts})"
