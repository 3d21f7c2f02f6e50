"""Figure 4: loss landscapes of SGD, SAM and LE-SAM along filter-normalised directions (Li et al. 2018)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesam.report.figure_runs import FigureRun
from lesam.report.figures.style import colour, new_figure, save


def contour_levels(low: float, high: float, count: int = 20) -> np.ndarray:
    """Levels shared by every panel: log-spaced when the loss spans more than a decade."""
    low = max(low, 1e-4)
    return np.geomspace(low, high, count) if high > 10 * low else np.linspace(low, high, count)


def render(runs: list[FigureRun], out: Path) -> list[Path]:
    """fig4: a surface and a contour plot per method (shared scale); fig4_1d: the loss along one direction."""
    surfaces = [np.array(run.analysis("landscape")["loss_2d"]) for run in runs]
    low, high = min(s.min() for s in surfaces), max(s.max() for s in surfaces)
    levels = contour_levels(low, high)
    fig = new_figure(3.6 * len(runs), 6.8)
    for i, (run, z) in enumerate(zip(runs, surfaces, strict=True)):
        grid = run.analysis("landscape")["grid"]
        x, y = np.meshgrid(grid, grid)
        surface = fig.add_subplot(2, len(runs), i + 1, projection="3d")
        surface.plot_surface(x, y, z, cmap="viridis", vmin=low, vmax=high, linewidth=0, antialiased=True)
        surface.set(zlim=(low, high), title=run.series, xlabel="d1", ylabel="d2", zlabel="loss")
        contour = fig.add_subplot(2, len(runs), len(runs) + i + 1)
        lines = contour.contour(x, y, z, levels=levels, cmap="viridis")
        contour.clabel(lines, fontsize=6, fmt="%.3g")
        contour.set(xlabel="d1", ylabel="d2", aspect="equal")
    paths = save(fig, out, "fig4")
    line = new_figure(5, 3.8)
    ax = line.subplots()
    for run in runs:
        result = run.analysis("landscape")
        ax.plot(result["x"], result["loss_1d"], color=colour(run.series), label=run.series)
    ax.set(xlabel="step along d1 (filter-normalised)", ylabel="training loss", title="loss along one direction")
    ax.legend()
    return paths + save(line, out, "fig4_1d")
