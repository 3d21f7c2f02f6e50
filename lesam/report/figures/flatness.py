"""Figure 3: (a) the top Hessian eigenvalues and the traces of SGD, SAM and LE-SAM; (b) LPF during training."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import MaxNLocator

from lesam.report.figure_runs import FigureRun, RunSpec
from lesam.report.figures.setting import PAPER
from lesam.report.figures.style import colour, new_figure, no_data, save

METHODS = (("SGD", "sgd"), ("SAM", "sam"), ("LE-SAM", "lesam"))
LPF_EVERY = 5  # epochs between LPF measurements during training
# the paper's estimator of its top 50 (section 5.3: power iteration, as PyHessian), so that the plot compares
# with the paper's; ANALYSIS="analysis.method=lanczos" draws the converged largest eigenvalues instead
ANALYSIS = ("analysis.method=power",)


def runs() -> list[RunSpec]:
    """One run per method (seed 0) with LPF logged during training; Figures 4 and 5 reuse them."""
    return [
        RunSpec(series, (*PAPER, f"optimizer={name}", "seed=0", f"trainer.lpf.every={LPF_EVERY}"))
        for series, name in METHODS
    ]


def render(runs: list[FigureRun], out: Path) -> list[Path]:
    """fig3: the eigenvalues by rank (trace in the legend) and LPF against epoch."""
    fig = new_figure(10, 3.8)
    spectrum, lpf = fig.subplots(1, 2)
    for run in runs:
        hessian = run.analysis("hessian")
        ranks = range(1, len(hessian["eigenvalues"]) + 1)
        label = f"{run.series} (trace {hessian['trace']:.4g})"
        spectrum.plot(ranks, hessian["eigenvalues"], marker="o", ms=2.5, lw=1, color=colour(run.series), label=label)
        logged = [(m["epoch"], m["lpf"]) for m in run.metrics if m.get("lpf") is not None]
        if logged:
            lpf.plot(*zip(*logged, strict=True), marker="o", ms=2.5, lw=1, color=colour(run.series), label=run.series)
    spectrum.set(xlabel="rank", ylabel="Hessian eigenvalue", title="(a) top Hessian eigenvalues")
    spectrum.legend()
    for ax in (spectrum, lpf):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    sigma = runs[0].cfg.trainer.lpf.sigma
    lpf.set(xlabel="epoch", ylabel=f"LPF: E L(w + eps), sigma {sigma:g}", title="(b) LPF during training")
    if lpf.has_data():
        lpf.legend()
    else:
        no_data(lpf, "no LPF logged (trainer.lpf.every=0)")
    return save(fig, out, "fig3")
