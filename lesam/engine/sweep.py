"""A multirun's jobs: every config is checked before the first trains, and a failed job does not stop the rest.

`CheckJobs` is a Hydra callback (configs/config.yaml, hydra.callbacks): when a multirun starts, it
composes each job's config as the launcher will and checks it; any bad job stops the sweep before
anything trains, with one line per bad job. A job that fails later is recorded by `job_failed` and
the launcher goes on with the next job; the CLI lists the failed jobs at the end. A job that runs
in a launcher's own process (submitit) raises instead, and that launcher reports it.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from lesam.core.errors import UserError
from lesam.engine.validate import validate

log = logging.getLogger("lesam")
LABELS: dict[int, str] = {}  # job number -> the overrides that tell it from the sweep's other jobs
FAILED: list[str] = []  # one line per job of this process's multirun that failed


class JobFailed(Exception):
    """A multirun job failed in a launcher's own process; the launcher hands the failure back."""


class SweepRefused(BaseException):
    """Bad jobs or no usable launcher: the multirun stops before any job starts.

    A BaseException because Hydra turns a callback's Exception into a warning and goes on.
    """


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Every job's overrides, in the launcher's order (the basic sweeper's expansion of params and sweeps)."""
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    overrides = parser.parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def labels(jobs: list[list[str]]) -> list[str]:
    """Each job's overrides of the keys whose value differs between jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    swept = {key for key, seen in values.items() if len(seen) > 1}
    return [" ".join(o for o in job if o.partition("=")[0] in swept) for job in jobs]


def job_name(number: int, label: str) -> str:
    """'job 1 (optimizer.rho=-1)': the launcher's number and the overrides that tell the job apart."""
    return f"job {number} ({label})" if label else f"job {number}"


def check_launcher(config: DictConfig) -> None:
    """A SLURM launcher needs sbatch on this machine; say so before submitit is asked."""
    if "SlurmLauncher" in config.hydra.launcher.get("_target_", "") and shutil.which("sbatch") is None:
        choice = config.hydra.runtime.choices.get("hydra/launcher", "slurm")
        raise UserError(f"sbatch not found: this machine has no SLURM; drop hydra/launcher={choice} to run here")


class CheckJobs(Callback):
    """Before a multirun: the launcher is usable and every job's config passes `validate`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Raise SweepRefused with a line per bad job, before any job starts."""
        try:
            check_launcher(config)
        except UserError as error:
            raise SweepRefused(str(error)) from error
        jobs = job_overrides(config)
        loader = GlobalHydra.instance().config_loader()
        problems = []
        for number, (overrides, label) in enumerate(zip(jobs, labels(jobs), strict=True)):
            LABELS[number] = label
            try:
                validate(loader.load_sweep_config(config, overrides), overrides)
            except UserError as error:
                problems.append(f"{job_name(number, label)}: {error}")
        if problems:
            raise SweepRefused("\n".join(problems))


def in_multirun() -> bool:
    """Whether this process runs a job of a multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_failed(error: Exception, message: str | None) -> None:
    """Report a multirun job's failure (with its traceback when `message` is None: a bug) and record it.

    In the sweep's own process the launcher then goes on with the next job; in a launcher's job
    process this raises JobFailed, which that launcher hands back to the sweep.
    """
    job = HydraConfig.get().job
    label = LABELS.get(job.num) or " ".join(HydraConfig.get().overrides.task)
    if message is None:
        traceback.print_exception(error)
        message = f"{type(error).__name__}: {error}".splitlines()[0]
    line = f"{job_name(job.num, label)} failed: {message}"
    if job.num not in LABELS:  # the checks ran in another process: the one that submitted this job
        raise JobFailed(line) from error
    FAILED.append(line)
    log.error("%s; going on with the next job", line)
