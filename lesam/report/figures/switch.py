"""Figure 6: SGD until epoch 160, then SAM or LE-SAM, against each method run from the start.

LE-SAM appears twice: with the paper's stabilisers (radius clip rho_max, budget annealing) and
without them, as in the paper's mechanism analysis (section 5.5).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from lesam.report.figure_runs import FigureRun, RunSpec
from lesam.report.figures.setting import PAPER, SEEDS
from lesam.report.figures.style import colour, mean_std, new_figure, save

SWITCH_EPOCH = 160
SWITCH = (f"optimizer.start_epoch={SWITCH_EPOCH}",)
UNSTABILISED = ("optimizer=lesam", "optimizer.rho_max=null", "optimizer.anneal_start_epoch=null")
SERIES = (
    ("SGD", ("optimizer=sgd",)),
    ("SAM", ("optimizer=sam",)),
    ("SGD→SAM", ("optimizer=sam", *SWITCH)),
    ("LE-SAM, no stabilisers", UNSTABILISED),
    ("SGD→LE-SAM, no stabilisers", (*UNSTABILISED, *SWITCH)),
    ("LE-SAM, clip + annealing", ("optimizer=lesam",)),
    ("SGD→LE-SAM, clip + annealing", ("optimizer=lesam", *SWITCH)),
)


def runs() -> list[RunSpec]:
    """Each series with the paper's three seeds."""
    return [RunSpec(series, (*PAPER, *overrides, f"seed={seed}")) for series, overrides in SERIES for seed in SEEDS]


def render(runs: list[FigureRun], out: Path) -> list[Path]:
    """fig6: (a) test accuracy against epoch (mean over seeds), (b) final test accuracy, mean +- std."""
    by_series: dict[str, list[FigureRun]] = defaultdict(list)
    for run in runs:
        by_series[run.series].append(run)
    order = [name for name, _ in SERIES if name in by_series]
    fig = new_figure(12, 4.2)
    curves, bars = fig.subplots(1, 2, width_ratios=(1.4, 1))
    for name in order:
        style = {"color": colour(name), "ls": "--" if "→" in name else "-", "alpha": 0.6 if "no stab" in name else 1}
        epochs, accuracy = mean_curve(by_series[name])
        curves.plot(epochs, accuracy, lw=1, label=name, **style)
    switches = sorted({run.cfg.optimizer.start_epoch for run in runs if run.cfg.optimizer.get("start_epoch")})
    for epoch in switches:
        curves.axvline(epoch, color="0.5", lw=0.8, ls=":")
    when = ", ".join(f"{e:g}" for e in switches) or "-"
    curves.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"(a) test accuracy; switch at epoch {when}")
    curves.legend(fontsize=7)
    finals = [mean_std([r.final["test_acc"] for r in by_series[name]]) for name in order]
    for i, (name, (mean, std)) in enumerate(zip(order, finals, strict=True)):
        bars.bar(i, mean, yerr=std, capsize=3, color=colour(name), alpha=0.5 if "→" in name else 0.9)
        bars.text(i, mean + std, f"{mean:.2f}\nn={len(by_series[name])}", ha="center", va="bottom", fontsize=7)
    low = min(m - s for m, s in finals)
    high = max(m + s for m, s in finals)
    bars.set_ylim(low - 0.1 * (high - low) - 0.5, high + 0.25 * (high - low) + 0.5)
    bars.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=7)
    bars.set(ylabel="final test accuracy (%)", title="(b) final accuracy, mean ± std over seeds")
    return save(fig, out, "fig6")


def mean_curve(runs: list[FigureRun]) -> tuple[list[int], list[float]]:
    """Test accuracy per tested epoch, averaged over the runs that tested it."""
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for m in run.metrics:
            if m.get("test_acc") is not None:
                per_epoch[m["epoch"]].append(m["test_acc"])
    epochs = sorted(per_epoch)
    return epochs, [mean_std(per_epoch[e])[0] for e in epochs]
