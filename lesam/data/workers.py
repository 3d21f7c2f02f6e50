"""How many loader worker processes a process can use: no more than the cores it may run on."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("lesam")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as torch's DataLoader counts them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_workers(asked: int, key: str) -> int:
    """`asked` workers, lowered to the usable cores with one info line: more would only wait for a core
    (and make the DataLoader warn)."""
    cores = usable_cores()
    if asked <= cores:
        return asked
    log.info("%s=%d lowered to %d, the cores this process may use", key, asked, cores)
    return cores
