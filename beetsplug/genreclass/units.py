"""What gets one verdict: an album's tracks together (``source: album``) or each track alone.

Albums are judged as one because beets users think of genre as an album property (lastgenre's
default ``source: album``): one record should not come out Rock, Pop and Electronic track by
track. Singletons and compilations ("Various Artists", ``comp``) stay per track in album mode:
their tracks need not share a genre.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable

from beets import config as beets_config
from beets.library import Album, Item

from genre_model.provenance import FIELDS, Origin, genres_origin


@dataclasses.dataclass
class Unit:
    """Tracks that get one verdict.

    kind: "album" for tracks pooled into one verdict; None for one track judged alone.
    key: the group's identity (an album's id), so that a run's summary counts an album once,
    however many import tasks it came in. name: how results name the group. albums: the albums
    whose own ``genres`` field follows the verdict.
    """

    items: list[Item]
    kind: str | None = None
    key: Hashable = None
    name: str = ""
    albums: list[Album] = dataclasses.field(default_factory=list)

    @property
    def alone(self) -> bool:
        return self.kind is None


def is_compilation(album: Album) -> bool:
    """An album of many artists (``comp`` set, or the album artist is beets' ``va_name``)."""
    return bool(album.get("comp")) or album.get("albumartist") == beets_config["va_name"].as_str()


def own_fields(model: Item | Album) -> Item | Album | dict:
    """The genres and verdict fields `model` itself holds. beets' `Item.get` falls back to the
    album's fields: a track of a classified album that was not given the verdict (it could not
    be decoded) would otherwise show the album's record beside its own empty genres, and look
    like a track whose genres were removed by hand."""
    if isinstance(model, Item):
        return {key: model.get(key, with_album=False) for key in ("genres", *FIELDS)}
    return model


def user_tagged(item: Item | Album) -> bool:
    """The track's genres are not genreclass's to replace: set or changed (removed too) by the
    user or another tool, or set by a version that did not record what it wrote."""
    return genres_origin(own_fields(item)) in (Origin.USER, Origin.CLEARED, Origin.UNRECORDED)


def group_units(items: Iterable[Item], source: str) -> list[Unit]:
    """Group `items` into units, in the order they come.

    source "album": an item of a (non-compilation) album brings in every track of that album,
    so that `beet genreclass artist:X` judges X's albums whole; the caller's `Item` objects are
    used where they are among them (an import task's items, whose files are written later).
    source "track": one unit per item.
    """
    if source == "track":
        return [Unit([item]) for item in items]
    items = list(items)
    given = {item.id: item for item in items}
    units: list[Unit] = []
    albums: dict[int, Unit | None] = {}  # album id -> its unit (None: judged per track); one query each
    for item in items:
        album_id = item.get("album_id")
        if album_id is not None and album_id not in albums:
            album = item.get_album()
            whole = album is not None and not is_compilation(album)
            albums[album_id] = None
            if whole:
                tracks = [given.get(t.id, t) for t in album.items()]
                albums[album_id] = Unit(tracks, "album", ("album", album.id), format(album), [album])
                units.append(albums[album_id])
        if album_id is None or albums[album_id] is None:
            units.append(Unit([item]))
    return units
