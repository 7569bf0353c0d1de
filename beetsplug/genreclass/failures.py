"""Files that could not be decoded, remembered on their library entry so that reruns skip them.

A corrupt file fails the same way every time: decoding it again on every run costs time, prints
the same error again, and (in an album) makes the whole album be decoded again although the
rest of it is done. The failure is kept with the file's size and modification time; a file
that changed since (repaired, replaced, re-ripped) is tried again, as is every file under
``--force``.
"""

from __future__ import annotations

import os

from beets.library import Item

# Why the file could not be decoded, as the error line said it.
FAILED_FIELD = "genreclass_failed"
# The file's st_mtime_ns and st_size (bytes) when it failed. The time is kept as the text of
# the integer: a flexible attribute is stored as text, and sqlite writes a float there with 15
# significant digits (a float mtime comes back a microsecond off, as if the file had changed).
FAILED_MTIME_FIELD = "genreclass_failed_mtime_ns"
FAILED_SIZE_FIELD = "genreclass_failed_size"
FAILURE_FIELDS = (FAILED_FIELD, FAILED_MTIME_FIELD, FAILED_SIZE_FIELD)


def remember(item: Item, reason: str) -> None:
    """Set `item`'s failure fields (not stored): `reason` and its file's size and mtime now.
    A missing file is remembered as size -1, so that its return counts as a change."""
    item[FAILED_FIELD] = reason
    item[FAILED_MTIME_FIELD], item[FAILED_SIZE_FIELD] = _signature(item)


def _signature(item: Item) -> tuple[str, int]:
    """(st_mtime_ns as text, st_size) of `item`'s file; ("0", -1) when it is missing."""
    try:
        stat = os.stat(item.path)
    except OSError:
        return "0", -1
    return str(stat.st_mtime_ns), stat.st_size


def restamp(item: Item) -> bool:
    """Give a remembered failure the size and mtime of `item`'s file as it is now (not stored):
    after an import copied or moved the file that failed, or wrote beets' own tags into it,
    the library's file is the one reruns compare against. Returns whether it had a failure."""
    if not item.get(FAILED_FIELD):
        return False
    remember(item, item[FAILED_FIELD])
    return True


def forget(item: Item) -> bool:
    """Remove `item`'s failure fields (not stored); returns whether it had any."""
    present = [key for key in FAILURE_FIELDS if key in item]
    for key in present:
        del item[key]
    return bool(present)


def still_failing(item: Item) -> str | None:
    """The remembered failure of `item`'s file if the file has not changed since (same size and
    mtime), else None: never failed, or worth trying again."""
    reason = item.get(FAILED_FIELD)
    if not reason:
        return None
    mtime, size = _signature(item)
    try:
        unchanged = str(item.get(FAILED_MTIME_FIELD)) == mtime and int(item.get(FAILED_SIZE_FIELD)) == size
    except (TypeError, ValueError):  # edited by hand into something else: try the file again
        return None
    return str(reason) if unchanged else None
