"""Launch a Hydra entry point so that a user mistake ends in one line and a non-zero exit."""

from __future__ import annotations

import functools
import os
import select
import signal
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from lesam.core.errors import UserError
from lesam.core.resolvers import register_resolvers
from lesam.engine import distributed, sweep
from lesam.engine.preemption import Interrupted

EXIT_USER_ERROR = 2
EXIT_JOBS_FAILED = 1  # a multirun in which some jobs failed
EXIT_INTERRUPTED = 128 + signal.SIGINT  # as a shell reports a process ended by Ctrl-C
tracebacks_asked = False  # HYDRA_FULL_ERROR as the user set it: launch reads it before giving Hydra its own value
ABORTED = "aborted by Ctrl-C; the run folder keeps the last checkpoint written"
T = TypeVar("T")


def explain(error: BaseException, command: str = "train.py") -> str | None:
    """One line for a user mistake, or None when the error is a bug that needs its traceback.

    `command` is the script whose `--cfg job` lists the keys (train.py or analyze.py).
    """
    user_error = _user_error_within(error)
    if user_error is not None:
        return str(user_error)
    if isinstance(error, MissingConfigException) and error.options is not None:
        group, _, choice = (error.missing_cfg_file or "").rpartition("/")
        return f"unknown {group} '{choice}'; choose one of: {', '.join(sorted(error.options))}"
    if isinstance(error.__cause__, ConfigAttributeError | ConfigKeyError) and error.__cause__.full_key:
        return _unknown_key(error.__cause__.full_key, command)
    if isinstance(error, ConfigCompositionException | OverrideParseException | OmegaConfBaseException):
        first = str(error).strip().splitlines()[0]
        return f"{first}; check the override against `python {command} --cfg job`"
    hydra_file = _innermost_hydra_file(error) if isinstance(error, OSError) else None
    if hydra_file is not None and "config_source" in Path(hydra_file).name:  # an override's key looked up as a file
        return _unknown_key(Path(str(error.filename)).name, command, f": {str(error.strerror).lower()}")
    if hydra_file is not None:  # hydra creating the run folder
        return (
            f"cannot create the run folder '{error.filename}' ({error.strerror}); set output_root=<a writable folder>"
        )
    return None


def _unknown_key(key: str, command: str, reason: str = "") -> str:
    """The line for a key no config defines; a long key is cut short."""
    shown = f"'{key}'" if len(key) <= 60 else f"'{key[:40]}...' ({len(key)} characters)"
    return f"unknown key {shown}{reason}; check its spelling (`python {command} --cfg job` lists the keys)"


def _user_error_within(error: BaseException) -> UserError | None:
    """`error` or the UserError it was raised from (a config resolver's, wrapped by OmegaConf), if any."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__ or error.__context__
    return error


def _innermost_hydra_file(error: BaseException) -> str | None:
    """The file of the traceback's innermost frame outside the standard library, if that file is Hydra's."""
    stdlib = sysconfig.get_paths()["stdlib"]
    files = [f.f_code.co_filename for f, _ in traceback.walk_tb(error.__traceback__)]
    outside = [f for f in files if not f.startswith(stdlib)]
    return outside[-1] if outside and f"{os.sep}hydra{os.sep}" in outside[-1] else None


def fail(message: str, status: int = EXIT_USER_ERROR) -> None:
    """Print each line of `message` as 'error: <line>' and exit with `status` (2: a user mistake)."""
    for line in message.splitlines():
        print(f"error: {line}", file=sys.stderr)
    sys.exit(status)


def task_error(error: Exception) -> str | None:
    """The one line for a user mistake raised inside a task; None for a bug."""
    if isinstance(error, MissingMandatoryValue):
        return f"no value for '{error.full_key}'; pass {error.full_key}=... on the command line"
    return str(error) if isinstance(error, UserError) else None


def exit_on_user_error(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap a Hydra task so that a UserError it raises ends the process with one line.

    Inside the task, Hydra would add its own report of the failed job; exiting here avoids it. In a
    multirun, a failed job is reported and recorded instead, and the launcher goes on with the next.
    """

    @functools.wraps(task)
    def wrapped(*args, **kwargs) -> T:
        try:
            return task(*args, **kwargs)
        except Interrupted as stop:  # last.pt is written and the run has said so: a clean stop, not a failure
            sys.exit(stop.exit_status)
        except Exception as error:
            message = None if tracebacks_asked else task_error(error)
            if sweep.in_multirun():
                sweep.job_failed(error, message)  # recorded: the launcher goes on with the next job
                return None
            if message is None:
                raise
            fail(message)

    return wrapped


def abort_on_ctrl_c(signum: int, frame: object) -> None:
    """Ctrl-C while no run is stopping for it (before a run starts, or a second one during a stop): one line and
    exit 130 at once, whatever the process is doing.

    An exception raised here could land anywhere: inside torch writing a checkpoint, it comes out as torch's own
    error and a traceback. The process ends as kill -9 would end it instead, and an atomic write keeps the
    previous file.
    """
    for stream in (sys.stdout, sys.stderr):  # what was printed before; a stream this signal cut into is skipped
        try:
            stream.flush()
        except (OSError, RuntimeError, ValueError):
            pass
    if distributed.is_main():
        os.write(sys.stderr.fileno(), f"{ABORTED}\n".encode())
    os._exit(EXIT_INTERRUPTED)


def full_error_asked() -> bool:
    """Whether HYDRA_FULL_ERROR asks for full tracebacks: a true value (1, true, yes), not its mere presence."""
    return os.environ.get("HYDRA_FULL_ERROR", "").strip().lower() in ("1", "true", "yes")


def launch(main: Callable[[], None]) -> None:
    """Run a @hydra.main function; user mistakes print 'error: ...' and exit with status 2, Ctrl-C one line and 130."""
    global tracebacks_asked
    signal.signal(signal.SIGINT, abort_on_ctrl_c)  # a run's stop takes Ctrl-C over while it trains
    register_resolvers()
    tracebacks_asked = full_error_asked()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # hydra re-raises instead of printing its own report
    try:
        quiet_when_the_reader_leaves(main)()  # `python train.py --cfg job | head`: the reader has what it wanted
    except sweep.SweepRefused as refused:
        fail(str(refused))
    except sweep.JobFailed as error:  # a job of a launcher's process, handed back once every job has run
        fail(str(error), EXIT_JOBS_FAILED)
    except Exception as error:  # noqa: BLE001 - anything not a user mistake is re-raised
        message = None if tracebacks_asked else explain(error, Path(sys.argv[0]).name)
        if message is None:
            raise
        fail(message)
    if sweep.FAILED:
        fail("\n".join(sweep.FAILED), EXIT_JOBS_FAILED)


def quiet_when_the_reader_leaves(main: Callable[..., T]) -> Callable[..., T | int]:
    """Wrap a script's main: a reader that stops reading its output (`| head`) ends it quietly, with status 0."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> T | int:
        try:
            result = main(*args, **kwargs)
            sys.stdout.flush()  # a broken pipe shows here, not in Python's flush at exit
            return result
        except BrokenPipeError:
            if not _stdout_closed_by_its_reader():
                raise  # another pipe: a failure, not the reader's choice
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or Python's flush at exit fails again
            return 0

    return wrapped


def _stdout_closed_by_its_reader() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on the writing end)."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))
