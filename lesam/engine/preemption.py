"""Stop at the next step boundary on SIGTERM, SIGUSR1 or Ctrl-C: write last.pt, exit, resume later.

Clusters announce preemption and time limits with a signal (SLURM: SIGTERM, or the signal of
`--signal`; submitit: SIGUSR2). The handler only records the signal; the training loop looks at
the record between steps, so a checkpoint is never taken halfway through a step. A second Ctrl-C
does not wait for the checkpoint: it goes to the handler Ctrl-C had before the run (train.py's ends
the process at once with one line; Python's raises KeyboardInterrupt).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lesam.engine import distributed

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
AGREE_EVERY = 10  # steps between the processes' agreement on stopping (a one-number all-reduce on the hosts)
T = TypeVar("T")


class Interrupted(Exception):
    """The run stopped for a signal after writing its checkpoint; the same command resumes it."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(signum, step)
        self.signum, self.step = signum, step
        self.checkpoint: Path | None = None

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal."""
        return 128 + self.signum

    def __str__(self) -> str:
        written = f"wrote {self.checkpoint}" if self.checkpoint else "wrote the checkpoint"
        name = signal.Signals(self.signum).name
        return f"stopped by {name} after step {self.step}: {written}; run the same command again to resume"


class StopRequest:
    """Records a stop signal and, between steps, tells the loop whether to stop."""

    def __init__(self) -> None:
        self.signum = 0
        self.previous: dict[int, object] = {}

    def signals(self) -> tuple[int, ...]:
        """SIGTERM, SIGUSR1, SIGINT, and under submitit its preemption signal (so its requeue waits for last.pt)."""
        if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
            return STOP_SIGNALS
        submitit_signal = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
        return STOP_SIGNALS + ((submitit_signal,) if submitit_signal else ())

    def install(self) -> None:
        """Record stop signals from now on instead of dying of them."""
        self.signum = 0
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in self.signals():
            self.previous[signum] = signal.signal(signum, self._record)

    def uninstall(self) -> None:
        """Give the signals back to the handlers that were there before."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def _record(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and self.signum:  # Ctrl-C while a stop is under way: the user does not want to wait
            previous = self.previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            raise KeyboardInterrupt
        self.signum = signum

    def due(self, step: int) -> int:
        """The signal to stop for after `step` steps, or 0 to go on.

        With several processes they must stop at the same step, so they agree every
        AGREE_EVERY steps (any process's signal stops them all); a single process checks a flag.
        """
        if distributed.world_size() == 1:
            return self.signum
        if step % AGREE_EVERY:
            return 0
        return distributed.max_over_processes(self.signum)

    def hand_on(self, signum: int) -> None:
        """After the checkpoint, call the handler the signal had before (submitit's requeues the job).

        Ctrl-C's is not called: the stop is the run's answer to Ctrl-C.
        """
        handler = self.previous.get(signum)
        if callable(handler) and signum != signal.SIGINT:
            handler(signum, None)


STOP = StopRequest()  # signal handlers belong to the process, so the request does too


def stop_on_signals(task: Callable[..., T]) -> Callable[..., T]:
    """Run `task` with the stop signals recorded in STOP, and the previous handlers back afterwards."""

    @functools.wraps(task)
    def wrapped(*args, **kwargs) -> T:
        STOP.install()
        try:
            return task(*args, **kwargs)
        finally:
            STOP.uninstall()

    return wrapped
