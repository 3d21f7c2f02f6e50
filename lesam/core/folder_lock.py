"""One process per run folder: an exclusive lock that the OS lets go when its holder ends, however it ends."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path

from lesam.core.errors import UserError
from lesam.core.files import writing

log = logging.getLogger("lesam")
HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited_locks() -> None:
    """In a forked child (a data loader worker): drop the parent's locks, which must end with the parent."""
    for fd in HELD:
        os.close(fd)
    HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class FolderInUse(UserError):
    """Another process holds the folder's lock."""


class FolderLock:
    """flock on `<folder>/.lock`, which names its holder (pid and host) for the process it keeps out.

    The file stays when the lock is let go: removing it could let two processes lock two files.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file = folder / ".lock"
        self.fd: int | None = None

    def take(self) -> None:
        """Take the folder for this process, or fail at once naming the process that has it."""
        with writing(self.file):
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(
                f"the run folder '{self.folder}' is in use by {self._holder()}; wait for that run to end "
                "(or stop it) before starting it again"
            ) from None
        except OSError as error:  # a file system without locks (ENOLCK, ENOSYS: some NFS and Lustre mounts)
            os.close(fd)
            log.warning("cannot lock %s (%s): nothing keeps a second process out of it", self.folder, error.strerror)
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self.fd = fd
        HELD.add(fd)

    def release(self) -> None:
        """Let the folder go (ending the process does the same)."""
        if self.fd is not None:
            HELD.discard(self.fd)
            os.close(self.fd)
            self.fd = None

    def holder(self) -> str | None:
        """The process that holds the folder now ('process 4242 on node17'), or None when none does.

        Asked with a shared lock that does not wait and is let go at once: a holder never notices, and
        nothing is written or created. On a file system without locks no holder can be told (None).
        """
        try:
            fd = os.open(self.file, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._holder()
        except OSError:
            return None
        finally:
            os.close(fd)  # lets the shared lock go
        return None

    def _holder(self) -> str:
        """The process that holds the lock, as it wrote itself into the lock file."""
        pid_host = self.file.read_text(errors="replace").split()
        return f"process {pid_host[0]} on {pid_host[1]}" if len(pid_host) == 2 else "another process"
