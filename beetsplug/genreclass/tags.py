"""Writing the genre tag, and only the genre tag, into a track's file."""

from __future__ import annotations

from beets import config as beets_config
from beets import plugins
from beets.library import Item
from beets.util import syspath
from mediafile import MediaFile, UnreadableFileError


def write_genres(item: Item) -> str | None:
    """Write `item.genres` into its file; returns why it could not be written, else None.

    `Item.write` would rewrite every media field from the database: beets' normalised values
    and empty defaults (BPM 0, disc 0/0, ...) would replace what the file holds. This is
    `Item.write` restricted to ``genres``, with the same ``write``/``after_write`` events for
    other plugins. The caller stores the item afterwards (its mtime changes here).
    """
    tags = {"genres": list(item.genres)}
    try:
        plugins.send("write", item=item, path=item.path, tags=tags)
        mediafile = MediaFile(syspath(item.path), id3v23=beets_config["id3v23"].get(bool))
        mediafile.update(tags)
        mediafile.save()
    except (UnreadableFileError, OSError) as exc:
        # MediaFile's messages repeat the path, which the caller's log line already gives.
        return str(exc).replace(f": {item.filepath!r}", "").replace(f": '{item.filepath}'", "")
    item.mtime = item.current_mtime()
    plugins.send("after_write", item=item, path=item.path)
    return None
