"""Figure 7: final accuracy against LE-SAM's budget delta (appendix D) and LE-SAM+'s alpha.

The runs are the jobs of the multirun presets configs/sweep/delta.yaml and alpha.yaml.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from lesam.report.figure_runs import FigureRun, RunSpec
from lesam.report.figures.style import colour, mean_std, new_figure, no_data, save
from lesam.report.plan import sweep_runs

SWEEPS = (
    ("delta", "LE-SAM", "(a) LE-SAM: loss budget delta"),
    ("alpha", "LE-SAM+", "(b) LE-SAM+: alpha"),
)


def runs() -> list[RunSpec]:
    """Every job of both sweeps; the series is the swept hyperparameter."""
    return [RunSpec(key, overrides) for key, _, _ in SWEEPS for overrides in sweep_runs(key)]


def render(runs: list[FigureRun], out: Path) -> list[Path]:
    """fig7: per swept value, the seeds' accuracies and their mean +- std."""
    fig = new_figure(9, 3.6)
    for ax, (key, method, title) in zip(fig.subplots(1, 2), SWEEPS, strict=True):
        swept = [run for run in runs if run.series == key]
        accuracy: dict[float, list[float]] = defaultdict(list)
        for run in swept:
            accuracy[run.cfg.optimizer[key]].append(run.final["test_acc"])
        budgets = sorted({run.cfg.optimizer.delta for run in swept})
        if key != "delta" and budgets:
            title += f" (delta {', '.join(f'{d:g}' for d in budgets)})"
        ax.set(xlabel=key, ylabel="final test accuracy (%)", title=title)
        if not accuracy:
            no_data(ax, f"no finished runs of sweep={key}")
            continue
        values = sorted(accuracy)
        for value in values:
            ax.scatter([value] * len(accuracy[value]), accuracy[value], s=8, color=colour(method), alpha=0.35)
        stats = [mean_std(accuracy[v]) for v in values]
        means, stds = zip(*stats, strict=True)
        label = f"{method}, mean ± std"
        ax.errorbar(values, means, yerr=stds, marker="o", capsize=3, color=colour(method), label=label)
        ax.set_xticks(values)
        seeds = sorted({len(accuracy[v]) for v in values})
        ax.legend(title=f"seeds per point: {', '.join(map(str, seeds))}", fontsize=8, title_fontsize=8)
    return save(fig, out, "fig7")
