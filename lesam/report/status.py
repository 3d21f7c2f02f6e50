"""Where a table's runs stand: done, diverged, running, stopped, failed or not started, and the GPU-hours left.

Read from the run folders alone, without taking their locks or writing anything: `final.json` (done, or
diverged when it says so or holds a non-finite result), the lock (running: which process on which host),
`last.pt` (how far a run got, and its measured seconds per epoch or step) and `train.log` (the error a
failed run ended with).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from lesam.core.errors import UserError
from lesam.core.folder_lock import FolderLock
from lesam.core.run_folder import RunFolder
from lesam.report.cost import run_hours
from lesam.report.make_table import check_configs, resolve
from lesam.report.plan import NOT_STARTED, Composer, RunState, composer, locate, runs
from lesam.report.spec import Table
from lesam.report.tables import TABLES

DONE, DIVERGED, RUNNING, STOPPED, FAILED = "done", "diverged", "running", "stopped", "failed"
STATES = (DONE, DIVERGED, RUNNING, STOPPED, FAILED, NOT_STARTED)


@dataclass(frozen=True)
class Progress:
    """How far a run got, from its last checkpoint."""

    epoch: int  # epochs finished
    step: int  # optimizer steps taken
    seconds: float  # seconds the finished epochs took
    interrupted: float | None  # seconds into the epoch a stop interrupted; None at an epoch's end
    processes: int  # the processes (GPUs) it trains on


@dataclass(frozen=True)
class Standing:
    """One run: its state, its folder (or the one it will have), what else there is to say, GPU-hours to go."""

    state: str
    folder: Path
    detail: str
    hours_left: float | None  # measured from the run once it has trained an epoch (or step), else estimated


def read_progress(folder: Path) -> Progress | None:
    """The position of `folder`'s last.pt, or None without a readable one. The file is mapped, not read (a few
    numbers of it are looked at), and a process replacing it meanwhile is not disturbed."""
    try:
        state = torch.load(RunFolder(folder).checkpoint, map_location="cpu", weights_only=True, mmap=True)
        trainer = state["trainer"]
        interrupted = trainer["partial"]["seconds"] if trainer.get("partial") else None
        return Progress(trainer["epoch"], trainer["step"], state["seconds"], interrupted, len(trainer["rng"]))
    except Exception:  # noqa: BLE001 - no checkpoint, or one that cannot be read: no position
        return None


def last_error(folder: Path) -> str | None:
    """The error a run ended with: train.log's last line when it is an ERROR line (None otherwise)."""
    log = RunFolder(folder).log
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    last = lines[-1].split(maxsplit=3) if lines else []  # date, time, level, message
    return last[3] if len(last) == 4 and last[2] == "ERROR" else None


def diverged(final: dict) -> bool:
    """Whether final.json marks the run diverged, or holds a non-finite result (as runs wrote before they said so)."""
    values = (final.get("test_acc"), final.get("test_loss"))
    return final.get("status") == "diverged" or any(isinstance(v, float) and not math.isfinite(v) for v in values)


def position(progress: Progress, cfg: DictConfig) -> str:
    """'after epoch 3 of 200 (step 1173)', 'in epoch 4 of 200, step 1200', or 'at step 300 of 8000'."""
    t = cfg.trainer
    if t.get("steps") is not None:
        return f"at step {progress.step} of {t.steps}"
    if progress.interrupted is not None:
        return f"in epoch {progress.epoch + 1} of {t.epochs}, step {progress.step}"
    return f"after epoch {progress.epoch} of {t.epochs} (step {progress.step})"


def hours_left(progress: Progress | None, cfg: DictConfig) -> float | None:
    """GPU-hours to finish: the run's own seconds per epoch (per step, for a run counted in steps) times what is
    left, times its processes; an interrupted epoch counts as left whole. Before a run has trained an epoch
    (a step), the table's estimate for the whole run (cost.py), or None where there is none."""
    steps = cfg.trainer.get("steps")
    if progress is None or (progress.step if steps is not None else progress.epoch) == 0:
        return run_hours(cfg)[0]
    if steps is not None:
        per, left = (progress.seconds + (progress.interrupted or 0.0)) / progress.step, steps - progress.step
    else:
        per, left = progress.seconds / progress.epoch, cfg.trainer.epochs - progress.epoch
    return max(left, 0) * per * progress.processes / 3600


def standing(state: RunState, cfg: DictConfig) -> Standing:
    """Where the located run `state` (of config `cfg`) stands."""
    if state.folder is None:
        return Standing(NOT_STARTED, state.own, "", hours_left(None, cfg))
    folder = RunFolder(state.folder)
    renamed = state.own is not None and state.folder.name != state.own.name  # by an earlier release's name
    if folder.is_finished():
        adopted = f"adopted for {state.own}" if renamed else ""
        return Standing(DIVERGED if diverged(folder.read_final()) else DONE, state.folder, adopted, 0.0)
    progress = read_progress(state.folder)
    detail = position(progress, cfg) if progress else "before its first checkpoint"
    if renamed:  # train.py resumes only the folder named by the run's id
        detail += f"; under another name: the run starts over in {state.own}"
    hours = hours_left(None if renamed else progress, cfg)
    holder = FolderLock(state.folder).holder()
    if holder is not None:
        return Standing(RUNNING, state.folder, f"{holder}; {detail}", hours)
    error = last_error(state.folder)
    if error is not None:
        return Standing(FAILED, state.folder, f"{detail}; {error}", hours)
    return Standing(STOPPED, state.folder, detail, hours)


def table_standings(
    t: Table,
    composer: Composer,
    root: Path | None = None,
    seeds: Sequence[int] | None = None,
    extra: Sequence[str] = (),
) -> list[Standing]:
    """Where each run of `t` stands (its seeds unless `seeds`, `extra` overrides added to each), found below
    `root` or else below each run's own output_root."""
    planned = runs(t, seeds, lambda _: tuple(extra))
    return [standing(s, composer.compose(s.run.args)) for s in locate(planned, composer, root)]


def summary(name: str, standings: Sequence[Standing]) -> str:
    """'table1: 126 runs: 40 done, ..., 80 not started; about 312 GPU-hours left, 2 runs not estimated'."""
    counts = Counter(s.state for s in standings)
    parts = ", ".join(f"{counts[state]} {state}" for state in STATES)
    left = [s.hours_left for s in standings if s.state not in (DONE, DIVERGED)]
    known = [h for h in left if h is not None]
    if not left:
        hours = "nothing left to train"
    elif not known:
        hours = "GPU-hours left not estimated (no time in the paper, none measured yet)"
    else:
        total, unknown = sum(known), len(left) - len(known)
        hours = f"about {total:.0f} GPU-hours left" if total >= 10 else f"about {total:.1f} GPU-hours left"
        hours += f", {unknown} run{'s' if unknown > 1 else ''} not estimated" if unknown else ""
    return f"{name}: {len(standings)} runs: {parts}; {hours}"


def lines(standings: Sequence[Standing]) -> list[str]:
    """One line per run: its state, its folder and what else there is to say."""
    return [f"{s.state:<11}  {s.folder}  {s.detail}".rstrip() for s in standings]


def report(name: str, root: Path | None = None, seeds: Sequence[int] | None = None, extra: Sequence[str] = ()) -> str:
    """What `make status` prints for table `name` (every table: 'all'): a line per run, then the counts."""
    if root is not None and not root.is_dir():
        raise UserError(f"FROM={root} is not a folder; pass the folder that holds the run folders")
    out = []
    with composer() as c:
        for t in TABLES.values() if name == "all" else [resolve(name)]:
            try:
                check_configs(t, extra)
            except UserError as error:
                if name != "all":
                    raise
                out.append(f"{t.name}: skipped: {error}")
                continue
            if not t.run_overrides():
                out.append(f"{t.name}: no runs")
                continue
            standings = table_standings(t, c, root, seeds, extra)
            out += [*lines(standings), summary(t.name, standings)]
    return "\n".join(out)
