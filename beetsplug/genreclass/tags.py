"""Saving a verdict: the genre tag, and only the genre tag, into the file, and the item into
the library, so that file and database agree whatever stops the run.

The order makes every failure leave both as they were: the new file is written beside the old
one (`safe_write`); then the database row is stored; then the new file is renamed into place.
A full disk or an unreadable file fails the first step, a locked or full database the second
(the new copy is thrown away), and SIGINT/SIGTERM wait until all three are done.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable

import mutagen
import mutagen.mp3
from beets import config as beets_config
from beets import plugins
from beets.dbcore.db import Model
from beets.library import Item
from mediafile import MediaFile, UnreadableFileError

from . import id3_genre
from .safe_write import Replacement, deferred_signals, prepare_replacement, temporary_path

# How long a locked library database is waited for, in seconds, on top of sqlite's own wait
# (beets' ``timeout``, 5 s by default): long enough for another beets command's transaction.
LOCKED_DB_PATIENCE_S = 60.0


class LibraryError(Exception):
    """The library database cannot be written (locked for too long, disk full): the run stops."""


class TagWriteError(Exception):
    """One file's tag could not be written; the file is left byte-identical."""


def _write_mp3(source: str, temporary: str, tags: dict) -> None:
    """`source` with its ID3v2 genre frame replaced (`id3_genre`) and its ID3v1 genre byte set;
    every other byte copied. Other fields a ``write`` listener added go through MediaFile."""
    genres = list(tags.pop("genres"))
    version = 3 if beets_config["id3v23"].get(bool) else 4
    with open(source, "rb") as src, open(temporary, "xb+") as dst:
        head = src.read(10)
        head += src.read(max(0, id3_genre.tag_size(head) - len(head)))
        new_tag, old_size = id3_genre.with_genres(head, genres, version)
        dst.write(new_tag)
        src.seek(old_size)
        shutil.copyfileobj(src, dst, 1 << 20)
        if dst.tell() - len(new_tag) >= 128:
            dst.seek(-128, os.SEEK_END)
            if dst.read(3) == b"TAG":  # an ID3v1 tag: its last byte is the genre
                dst.seek(-1, os.SEEK_END)
                dst.write(bytes([id3_genre.v1_genre_byte(genres)]))
    if tags:
        _write_mediafile(temporary, temporary, tags)


def _write_mediafile(source: str, temporary: str, tags: dict) -> None:
    if source != temporary:
        shutil.copyfile(source, temporary)
    mediafile = MediaFile(temporary, id3v23=_keeps_id3v23(temporary))
    mediafile.update(tags)
    mediafile.save()


def _keeps_id3v23(path: str) -> bool:
    """Save an ID3 tag (AIFF, WAV, or an MP3 whose tag mutagen must rewrite) as v2.3 when the
    file's tag already is, else as beets' ``id3v23`` says."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    return head[:3] == b"ID3" and head[3] == 3 or beets_config["id3v23"].get(bool)


def _new_file(tags: dict) -> Callable[[str, str], None]:
    """write_new for `prepare_replacement`: the file with `tags`, checked by reading it back."""

    def write_new(source: str, temporary: str) -> None:
        try:
            is_mp3 = isinstance(mutagen.File(source), mutagen.mp3.MP3)
        except mutagen.MutagenError as exc:
            raise TagWriteError(f"cannot read its tags: {exc}") from None
        spliced = False
        if is_mp3:
            try:
                _write_mp3(source, temporary, dict(tags))
                spliced = True
            except id3_genre.ID3LayoutError:  # a tag layout only mutagen rewrites
                os.unlink(temporary)
        if not spliced:  # every other format, and those MP3s: the whole tag goes through MediaFile
            _write_mediafile(source, temporary, dict(tags))
        # Some formats hold one genre (ASF's WM/Genre): what reads back must be a prefix.
        written, wanted = list(MediaFile(temporary).genres or []), list(tags["genres"])
        if written != wanted[: len(written)] or bool(written) != bool(wanted):
            raise TagWriteError(f"the genres read back as {written!r}, not {wanted!r}")

    return write_new


def prepare_genre_write(item: Item) -> Replacement:
    """Write `item`'s file with ``item.genres`` as its genre tag beside it (not yet in place).

    `Item.write` would rewrite every media field from the database: beets' normalised values
    and empty defaults (BPM 0, disc 0/0, ...) would replace what the file holds. This writes
    ``genres`` alone, with the same ``write`` event for other plugins. Raises `TagWriteError`
    with the reason; the file is then untouched.
    """
    tags = {"genres": list(item.genres)}
    plugins.send("write", item=item, path=item.path, tags=tags)
    try:
        return prepare_replacement(item.path, _new_file(tags))
    except (UnreadableFileError, mutagen.MutagenError, OSError) as exc:
        # Messages that repeat the path, which the caller's log line already gives, lose it.
        reason = getattr(exc, "strerror", None) or str(exc)
        raise TagWriteError(reason.replace(f": {item.filepath!r}", "").replace(f": '{item.filepath}'", "")) from None


def store(model: Model, **kwargs) -> None:
    """``model.store(**kwargs)``, waiting out a database another process holds locked (as long
    as `LOCKED_DB_PATIENCE_S` beyond sqlite's own timeout). Raises `LibraryError` when it stays locked or
    the database cannot grow (disk full); nothing is stored then."""
    deadline = time.monotonic() + LOCKED_DB_PATIENCE_S
    while True:
        # `Model.store` forgets which fields changed before its UPDATE runs; a retry needs them.
        dirty = set(model._dirty)
        try:
            model.store(**kwargs)
            return
        except sqlite3.OperationalError as exc:
            model._dirty |= dirty
            if "locked" in str(exc) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise LibraryError(f"cannot save to the library database ({exc})") from None


def finish_interrupted_write(item: Item) -> None:
    """Complete or undo a write of `item`'s file that a killed run left half done (a SIGKILL or
    a power cut, which no handler sees).

    A new copy beside the file whose modification time is the one the item's row holds was
    stored in the library before the kill came: the rename that would have followed is done
    now, so file and row agree. Any other copy was never stored: it is removed.
    """
    target = os.path.realpath(os.fsdecode(item.path))
    temporary = temporary_path(target)
    try:
        copy_mtime = os.stat(temporary).st_mtime
    except OSError:
        return
    with deferred_signals():
        replacement = Replacement(target, temporary)
        if copy_mtime == item.get("mtime"):
            replacement.commit()
        else:
            replacement.discard()


def _restore(item: Item, before: Item) -> None:
    """Give `item` the fields of `before` (its earlier database row) and store them."""
    for key in set(item.keys(with_album=False)) - set(before.keys(with_album=False)):
        del item[key]
    item.update({key: before[key] for key in before.keys(with_album=False)})
    store(item)


def save(item: Item, write: bool) -> str | None:
    """Store `item` in the library and, with `write`, its genres in its file: both or neither.

    returns why the tag could not be written (the item is reloaded from the database, the file
    unchanged), or None. Raises `LibraryError` when the database cannot be written; the file is
    unchanged then too.
    """
    with deferred_signals():
        if not write:
            store(item)
            return None
        try:
            replacement = prepare_genre_write(item)
        except TagWriteError as exc:
            item.load()
            return str(exc)
        before = item.get_fresh_from_db()
        item.mtime = replacement.mtime
        try:
            store(item)
        except BaseException:
            replacement.discard()
            raise
        try:
            replacement.commit()
        except OSError as exc:
            replacement.discard()
            _restore(item, before)  # the stored row describes a file that did not change
            return f"cannot put the new file in place ({exc.strerror or exc})"
    plugins.send("after_write", item=item, path=item.path)
    return None
