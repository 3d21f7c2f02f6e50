"""The paper's figures from run folders: `make fig3` ... `make fig7` (scripts/figure.py).

A figure names its runs (lesam.report.figure_runs, resolved by the planner lesam.report.plan), the
analyses each run needs (computed from the run's checkpoint when its JSON is missing or was made
with other settings), and a function that draws it from the finished runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from lesam.analysis.run import result_path, run_analysis
from lesam.core.errors import UserError
from lesam.report.figure_runs import FigureRun, RunSpec, analysis_command, resolve, train_command
from lesam.report.figures import flatness, landscape, radius, sensitivity, switch
from lesam.report.plan import composer, merge_overrides

log = logging.getLogger("lesam")


@dataclass(frozen=True)
class FigureSpec:
    """What a figure shows, the runs and analyses it needs, and how it is drawn."""

    title: str
    runs: Callable[[], list[RunSpec]]
    analyses: tuple[str, ...]
    render: Callable[[list[FigureRun], Path], list[Path]]
    analysis_overrides: tuple[str, ...] = ()  # the figure's analysis settings, before the user's (ANALYSIS=...)


FIGURES: dict[str, FigureSpec] = {
    "fig3": FigureSpec(
        "Hessian spectrum and trace; LPF during training",
        flatness.runs,
        ("hessian",),
        flatness.render,
        flatness.ANALYSIS,
    ),
    "fig4": FigureSpec("loss landscapes", flatness.runs, ("landscape",), landscape.render),
    "fig5": FigureSpec("LE-SAM's radius during training", radius.runs, (), radius.render),
    "fig6": FigureSpec("switching from SGD to SAM or LE-SAM", switch.runs, (), switch.render),
    "fig7": FigureSpec("sensitivity to delta and alpha", sensitivity.runs, (), sensitivity.render),
}


def figure_runs(name: str, root: Path, overrides: Sequence[str]) -> list[FigureRun]:
    """The runs of figure `name`, with `overrides` applied to each, located under `root`."""
    if name not in FIGURES:
        raise UserError(f"unknown figure '{name}'; choose one of: {', '.join(FIGURES)}")
    return resolve(FIGURES[name].runs(), overrides, root)


def dry_listing(name: str, runs: list[FigureRun], root: Path, analysis_overrides: Sequence[str]) -> list[str]:
    """One command per run (train.py; finished runs are skipped by it), then one per analysis."""
    lines = [f"{train_command(run)}  # {run.series}: {run.status}" for run in runs]
    spec = FIGURES[name]
    overrides = merge_overrides(spec.analysis_overrides, analysis_overrides)
    lines += [analysis_command(run, a, overrides) for a in spec.analyses for run in runs]
    return lines


def ensure_analysis(run: FigureRun, name: str, overrides: Sequence[str]) -> None:
    """Write <run>/<name>.json from the checkpoint unless it exists with the same analysis settings."""
    checkpoint = run.folder / "last.pt"
    with composer() as c:
        cfg = c.compose([f"analysis={name}", f"checkpoint={checkpoint}", *overrides], config_name="analyze")
    path = result_path(checkpoint, name)
    wanted = OmegaConf.to_container(cfg.analysis, resolve=True)
    if path.exists() and json.loads(path.read_text()).get("analysis") == wanted:
        return
    log.info("%s: analysis=%s of %s", run.series, name, run.folder)
    run_analysis(cfg)


def make_figure(
    name: str, root: Path, out: Path, overrides: Sequence[str] = (), analysis_overrides: Sequence[str] = ()
) -> list[Path]:
    """Run the missing analyses of the finished runs of figure `name` and draw it into `out`."""
    runs = figure_runs(name, root, overrides)
    finished = [run for run in runs if run.finished]
    if not finished:
        raise UserError(
            f"none of the {len(runs)} runs of {name} has finished under '{root}'; "
            f"`make {name} DRY=1` lists the commands that train them"
        )
    if len(finished) < len(runs):
        log.warning(
            "%s: %d of %d runs are missing, unfinished or diverged under %s; the figure shows the others "
            "(`make %s DRY=1` lists them all with their state)",
            name,
            len(runs) - len(finished),
            len(runs),
            root,
            name,
        )
    spec = FIGURES[name]
    for analysis in spec.analyses:
        for run in finished:
            ensure_analysis(run, analysis, merge_overrides(spec.analysis_overrides, analysis_overrides))
    return FIGURES[name].render(finished, Path(out))
