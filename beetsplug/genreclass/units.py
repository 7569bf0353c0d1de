"""What gets one verdict: an album's tracks together (``source: album``) or each track alone.

Albums are judged as one because beets users think of genre as an album property (lastgenre's
default ``source: album``): one record should not come out Rock, Pop and Electronic track by
track. Singletons and compilations ("Various Artists", ``comp``) stay per track: their tracks
need not share a genre.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from beets import config as beets_config
from beets.library import Album, Item


@dataclasses.dataclass
class Unit:
    """Tracks that get one verdict: every track of `album`, or one track (`album` None)."""

    items: list[Item]
    album: Album | None = None


def is_compilation(album: Album) -> bool:
    """An album of many artists (``comp`` set, or the album artist is beets' ``va_name``)."""
    return bool(album.get("comp")) or album.get("albumartist") == beets_config["va_name"].as_str()


def user_tagged(item: Item) -> bool:
    """The track carries genres that genreclass did not set (the user's, or another tool's)."""
    return bool(item.get("genres")) and not item.get("genreclass_model")


def group_units(items: Iterable[Item], source: str) -> list[Unit]:
    """Group `items` into units, in the order they come.

    source "album": an item of a (non-compilation) album brings in every track of that album,
    so that `beet genreclass artist:X` judges X's albums whole; the caller's `Item` objects are
    used where they are among them (an import task's items, whose files are written later).
    """
    units: list[Unit] = []
    if source == "track":
        return [Unit([item]) for item in items]
    items = list(items)
    given = {item.id: item for item in items}
    albums: set[int] = set()
    for item in items:
        album = item.get_album()
        if album is None or is_compilation(album):
            units.append(Unit([item]))
        elif album.id not in albums:
            albums.add(album.id)
            units.append(Unit([given.get(track.id, track) for track in album.items()], album))
    return units
