"""Figure 5: LE-SAM's radius rho_t = delta_t / ||g_t|| over training, step by step, with its budget and its clip."""

from __future__ import annotations

import math
from pathlib import Path

from lesam.report.figure_runs import FigureRun, RunSpec
from lesam.report.figures import flatness
from lesam.report.figures.style import colour, new_figure, no_data, save


def runs() -> list[RunSpec]:
    """The LE-SAM run of Figure 3 (its rho.jsonl holds every `trainer.rho_every`-th radius)."""
    return [spec for spec in flatness.runs() if spec.series == "LE-SAM"]


def clipped_spans(epochs: list[float], clipped: list[bool], width: float) -> list[tuple[float, float]]:
    """(start, length) in epochs of each stretch of clipped steps, from trace points at `epochs` that stand for
    `width` epochs each, centred on them; neighbouring clipped points make one stretch."""
    spans: list[tuple[float, float]] = []
    for epoch, flag in zip(epochs, clipped, strict=True):
        if not flag:
            continue
        start = epoch - width / 2
        if spans and math.isclose(sum(spans[-1]), start, abs_tol=width * 1e-6):
            spans[-1] = (spans[-1][0], spans[-1][1] + width)
        else:
            spans.append((start, width))
    return spans


def render(runs: list[FigureRun], out: Path) -> list[Path]:
    """fig5: per-step rho_t, its epoch mean, the clip rho_max with the steps it bound shaded, and delta_t on a
    second axis."""
    fig = new_figure(7, 3.8)
    ax = fig.subplots()
    budget = ax.twinx()
    for run in runs:
        steps_per_epoch = run.final["steps"] / run.final["epochs"]
        epochs = [s / steps_per_epoch for line in run.rho for s in line["step"]]
        radii = [r for line in run.rho for r in line["rho"]]
        stride = run.cfg.trainer.rho_every
        ax.plot(epochs, radii, lw=0.4, alpha=0.5, color=colour(run.series), label=f"rho_t (1 step in {stride})")
        means = [(m["epoch"] - 0.5, m["rho_mean"]) for m in run.metrics if "rho_mean" in m]
        if means:
            ax.plot(*zip(*means, strict=True), lw=1.5, color="darkred", label="epoch mean")
        if run.cfg.optimizer.get("rho_max") is not None:
            ax.axhline(run.cfg.optimizer.rho_max, ls="--", lw=1, color="0.3", label="rho_max")
            # a trace written without the clip's flags (by older code) shades nothing
            clipped = [c for line in run.rho for c in line.get("clipped", [False] * len(line["step"]))]
            spans = clipped_spans(epochs, clipped, stride / steps_per_epoch)
            if spans:  # x in epochs, y over the whole height
                shade = dict(color=colour(run.series), alpha=0.15, lw=0, transform=ax.get_xaxis_transform())
                ax.broken_barh(spans, (0, 1), label="clipped: rho_t = rho_max", **shade)
        deltas = [(m["epoch"] - 0.5, m["delta"]) for m in run.metrics if m.get("delta") is not None]
        if deltas:
            budget.plot(*zip(*deltas, strict=True), ls=":", lw=1.2, color="0.2", label="delta_t (right)")
    ax.set(xlabel="epoch", ylabel="radius rho_t", title="LE-SAM's radius during training")
    budget.set_ylabel("loss budget delta_t")
    budget.set_ylim(bottom=0)
    if ax.has_data():
        handles = ax.get_legend_handles_labels()
        extra = budget.get_legend_handles_labels()
        ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8)
    else:
        no_data(ax, "no radii logged (trainer.rho_every=0)")
    return save(fig, out, "fig5")
