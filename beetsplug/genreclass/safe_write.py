"""Replacing a user's file so that, at every instant, it holds either its old bytes or its new.

mutagen edits tags in place: when a new tag does not fit the file's padding it shifts the
audio in 1 MiB chunks, so a kill, a second Ctrl-C or a full disk in the middle leaves a file
that is neither. Here the new file is written beside the old one (same folder, so the same
file system), flushed to disk, given the old file's mode, owner and extended attributes, and
renamed over it: POSIX `rename` is atomic, so readers and a crash see one file or the other.
A failure before the rename removes the new copy and leaves the old file byte-identical.

What this means for links: a symbolic link is followed and its target replaced (the link
stays, as beets' ``import.link`` expects writes to reach the original). A hard link
(``import.hardlink``) is a second name of the same bytes; the rename gives the library's name
a new file, so the other name (the user's original) keeps its old bytes and tags.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator

# Signals that would stop the run between two steps that belong together (a file and its
# database row). SIGKILL cannot be held back; the rename keeps the file whole even then.
_DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM, SIGHUP and SIGQUIT until the block ends; one that arrived
    meanwhile is delivered then (its handler runs, or the process ends as it would have).

    In the main thread the Python handlers are swapped for a recorder: a signal may reach the
    process through any of its threads (onnxruntime's, the decoder pool's), and CPython then
    runs the handler in the main thread, so masking the main thread alone would not hold it
    back. Elsewhere (beets' import pipeline threads) that thread's mask is all there is to set.
    """
    if threading.current_thread() is not threading.main_thread():
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        return
    arrived: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: arrived.append(signum)) for sig in _DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(arrived):  # once each, in the order they came, as the kernel would
            signal.raise_signal(sig)


def temporary_path(path: str) -> str:
    """Where the new bytes of `path` are written: a hidden name in its folder (beets' default
    ``ignore`` skips it on import), with the same extension, which tag libraries look at."""
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.genreclass-tmp{ext}")


class Replacement:
    """A file's new bytes, written and flushed beside it but not yet in its place.

    `commit` puts them in place atomically; `discard` removes them, leaving the file as it
    was. mtime: the new file's modification time (what beets stores as the item's ``mtime``).
    """

    def __init__(self, target: str, temporary: str) -> None:
        self.target, self.temporary = target, temporary
        self.mtime = os.stat(temporary).st_mtime

    def commit(self) -> None:
        """Rename the new bytes over the file, then flush the folder so the rename survives a crash."""
        os.replace(self.temporary, self.target)
        _fsync_folder(os.path.dirname(self.target))

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temporary)


def prepare_replacement(path: str | bytes, write_new: Callable[[str, str], None]) -> Replacement:
    """Write the new version of `path` beside it and return it, not yet in place.

    write_new(source, temporary): writes the whole new file at `temporary` (which does not
    exist yet) from `source` (the file, links followed). Afterwards the new file is flushed and
    given the old one's mode, owner, group and extended attributes; its times are now's, as
    after an in-place write. Raises `OSError` (the old file untouched, nothing left
    beside it) when any step fails, including when the owner cannot be kept.
    """
    target = os.path.realpath(os.fsdecode(path))
    old = os.stat(target)
    if not os.access(target, os.W_OK):
        # The rename needs only the folder's permission: without this a read-only file, which
        # an in-place write could not change, would be replaced.
        raise PermissionError(f"the file is not writable ({target})")
    temporary = temporary_path(target)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by a run killed before its rename: never the user's file
    try:
        write_new(target, temporary)
        shutil.copystat(target, temporary)  # mode, extended attributes (and times, reset below)
        if (old.st_uid, old.st_gid) != (os.stat(temporary).st_uid, os.stat(temporary).st_gid):
            try:
                os.chown(temporary, old.st_uid, old.st_gid)
            except PermissionError:
                raise PermissionError(
                    f"cannot keep the file's owner ({old.st_uid}:{old.st_gid}) in a new copy; run as its owner"
                ) from None
            os.chmod(temporary, old.st_mode)  # chown clears set-id bits
        os.utime(temporary)
        fd = os.open(temporary, os.O_RDONLY)  # the copy may be read-only now, as the file was
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return Replacement(target, temporary)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not every platform opens folders (Windows); the rename itself is done
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
