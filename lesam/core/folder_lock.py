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
    """flock on the folder itself and on `<folder>/.lock`, which names its holder (pid and host) for the
    process it keeps out.

    The folder's lock cannot be deleted from under its holder: removing `.lock` lets no second process
    in. The file's lock is there for the file systems that lock files but not folders (NFS locks only
    files open for writing). The file stays when the lock is let go: removing it could let two processes
    lock two files.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file = folder / ".lock"
        self.fds: list[int] = []

    def take(self) -> None:
        """Take the folder for this process, or fail at once naming the process that has it."""
        fds, unlockable = [], []
        try:
            for path, flags in ((self.folder, os.O_RDONLY | os.O_DIRECTORY), (self.file, os.O_RDWR | os.O_CREAT)):
                with writing(path):
                    fds.append(os.open(path, flags, 0o666))
                unlockable += self._lock(fds[-1])
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if len(unlockable) == len(fds):  # a file system without locks (ENOLCK, ENOSYS: some NFS and Lustre mounts)
            for fd in fds:
                os.close(fd)
            log.warning("cannot lock %s (%s): nothing keeps a second process out of it", self.folder, unlockable[0])
            return
        os.ftruncate(fds[-1], 0)
        os.write(fds[-1], f"{os.getpid()} {socket.gethostname()}\n".encode())
        self.fds = fds
        HELD.update(fds)

    def _lock(self, fd: int) -> list[str]:
        """flock `fd` for this process: [] once locked, [the reason] where the file system cannot lock it;
        FolderInUse if another process holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(
                f"the run folder '{self.folder}' is in use by {self._holder()}; wait for that run to end "
                "(or stop it) before starting it again"
            ) from None
        except OSError as error:
            return [error.strerror]
        return []

    def release(self) -> None:
        """Let the folder go (ending the process does the same)."""
        for fd in self.fds:
            HELD.discard(fd)
            os.close(fd)
        self.fds = []

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
        """The process that holds the lock, as it wrote itself into the lock file (if the file is still there)."""
        try:
            pid_host = self.file.read_text(errors="replace").split()
        except OSError:
            pid_host = []
        return f"process {pid_host[0]} on {pid_host[1]}" if len(pid_host) == 2 else "another process"
