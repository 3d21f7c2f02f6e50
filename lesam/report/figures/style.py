"""What every figure shares: colours per method, seed statistics, and PNG + PDF output.

Figures are drawn through matplotlib's object API (no pyplot, no display): PNG goes through the
Agg renderer, PDF through matplotlib's PDF backend.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lesam.core.files import atomic_write

COLOURS = {"SGD": "0.45", "SAM": "tab:blue", "LE-SAM": "tab:red", "LE-SAM+": "tab:purple"}
FORMATS = ("png", "pdf")


def colour(series: str) -> str:
    """The colour of a method (the name after a switch arrow, e.g. 'SGD→SAM' is SAM's)."""
    method = series.split("→")[-1].split(",")[0].strip()
    return COLOURS.get(method, "tab:green")


def new_figure(width: float, height: float) -> Figure:
    """A figure of the given size in inches, laid out automatically."""
    return Figure(figsize=(width, height), layout="constrained")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def no_data(ax: Axes, text: str) -> None:
    """Say in the panel why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Write `fig` as out/<name>.png and out/<name>.pdf, each atomically."""
    paths = []
    for fmt in FORMATS:
        path = Path(out) / f"{name}.{fmt}"
        atomic_write(path, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=200))
        paths.append(path)
    return paths
