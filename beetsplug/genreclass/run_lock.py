"""One genreclass run at a time writes to a library.

Two runs over the same files (a scheduled `beet genreclass -w` and an import with ``auto:
yes``, say) would each replace files the other is reading or writing. The lock is an
exclusive `flock` on a file beside the library database: the kernel drops it when its holder
ends, however it ends (a SIGKILL included), so a crashed run never blocks the next. The file
names the holder so the second run can say which process it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time


class LibraryBusy(Exception):
    """Another process holds the library's genreclass lock; the message names it."""


def lock_path(library_path: str | bytes) -> str:
    """The lock file of the library database at `library_path`."""
    return os.fsdecode(library_path) + ".genreclass-lock"


class RunLock:
    """The library's genreclass lock, held from `acquire` to `release` (or the process's end)."""

    def __init__(self, library_path: str | bytes) -> None:
        self.path = lock_path(library_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, what: str) -> None:
        """Take the lock for `what` (shown to a run that finds it taken); raises `LibraryBusy`
        at once when another process holds it. Taking it again in this process is a no-op."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LibraryBusy(
                f"another genreclass run is writing to this library ({holder}); nothing was changed, "
                "run again when it has finished"
            ) from None
        self._fd = fd
        with contextlib.suppress(OSError):  # who holds it is a courtesy; a full disk must not stop the run
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {what}, since {time.strftime('%H:%M:%S')}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def command_line() -> str:
    """How this process was started, for the lock's holder line ('beet genreclass -w')."""
    return "'" + " ".join(["beet", *sys.argv[1:]]) + "'"
