"""Launch a table's runs: Hydra multiruns one after another, one run per GPU, or through SLURM.

train.py itself skips a finished run and resumes an unfinished one, so launching again is always safe.
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from lesam.core.errors import UserError
from lesam.core.paths import CONFIGS, PROJECT
from lesam.report.plan import Composer, Run, analyze_argv, multiruns, train_argv
from lesam.report.spec import Analysis

# runs one command (argv, extra environment) in the project folder and returns its exit status
Runner = Callable[[list[str], dict[str, str]], int]


def subprocess_runner(argv: list[str], env: dict[str, str]) -> int:
    """Run `argv` in the project folder with `env` added to the environment."""
    return subprocess.run(argv, cwd=PROJECT, env=os.environ | env, check=False).returncode


def launcher_override(name: str) -> str:
    """The override that sends a multirun's jobs through configs/hydra/launcher/<name>.yaml."""
    folder = CONFIGS / "hydra" / "launcher"
    if not (folder / f"{name}.yaml").is_file():
        choices = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise UserError(f"unknown launcher '{name}'; choose one of: {choices} (configs/hydra/launcher)")
    return f"hydra/launcher={name}"


def pending_analyses(run: Run, folder: Path, analyses: Sequence[Analysis]) -> list[Analysis]:
    """The analyses of `run` whose result file is not in its folder yet."""
    return [a for a in analyses if not (folder / a.result_file).is_file()]


def sequential(planned: Sequence[Run], launcher: str | None = None, runner: Runner = subprocess_runner) -> list[str]:
    """One `train.py -m` per multirun, one after another (through `launcher` when given); failed commands."""
    chosen = (launcher_override(launcher),) if launcher else ()
    failed = []
    for multirun in multiruns(planned):
        argv = train_argv((*multirun.args, *chosen))
        if runner(argv, {}) != 0:
            failed.append(shlex.join(argv))
    return failed


def analyses(
    planned: Sequence[Run], composer: Composer, todo: Sequence[Analysis], runner: Runner = subprocess_runner
) -> list[str]:
    """Run each pending analysis of every finished run, one after another; failed commands."""
    failed = []
    for run in planned:
        folder = composer.home(run.args)
        if not (folder / "final.json").is_file():
            continue
        for analysis in pending_analyses(run, folder, todo):
            argv = analyze_argv(analysis.overrides, folder)
            if runner(argv, {}) != 0:
                failed.append(shlex.join(argv))
    return failed


def per_gpu(
    planned: Sequence[Run],
    composer: Composer,
    gpus: Sequence[str],
    todo: Sequence[Analysis] = (),
    runner: Runner = subprocess_runner,
) -> list[str]:
    """Each run (then its analyses) as its own process pinned to one GPU, one run per GPU at a time."""
    jobs: queue.Queue[list[list[str]]] = queue.Queue()
    for run in planned:
        folder = composer.home(run.args)
        steps = [] if (folder / "final.json").is_file() else [train_argv(run.args)]
        steps += [analyze_argv(a.overrides, folder) for a in pending_analyses(run, folder, todo)]
        if steps:
            jobs.put(steps)
    failed: list[str] = []

    def worker(gpu: str) -> None:
        while True:
            try:
                steps = jobs.get_nowait()
            except queue.Empty:
                return
            for argv in steps:  # an analysis needs its training: stop at the first failure
                if runner(argv, {"CUDA_VISIBLE_DEVICES": gpu}) != 0:
                    failed.append(f"CUDA_VISIBLE_DEVICES={gpu} {shlex.join(argv)}")
                    break

    threads = [threading.Thread(target=worker, args=(gpu,)) for gpu in gpus]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed
