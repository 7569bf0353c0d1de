"""What gets one verdict: an album's tracks together (``source: album``), an artist's tracks
together (``source: artist``), or each track alone.

Albums are judged as one because beets users think of genre as an album property (lastgenre's
default ``source: album``): one record should not come out Rock, Pop and Electronic track by
track. Singletons and compilations ("Various Artists", ``comp``) stay per track in album mode:
their tracks need not share a genre. An artist's tracks pooled together are right more often
still (held-out clips of artists with two or more: 0.788 against 0.748 alone, docs/BENCHMARKS.md
"Round 2"), for artists who keep to one genre.
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

    kind: "album" or "artist" for tracks pooled into one verdict; None for one track judged alone.
    key: the group's identity (an album's id, an artist's name case-folded), so that a run's
    summary counts an album or artist once, however many import tasks it came in.
    name: how results name the group. albums: the albums whose own ``genres`` field follows the
    verdict (album mode: the album; artist mode: each album whose every track is in `items`).
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


def artist_of(item: Item, album: Album | None) -> str:
    """Whose track `item` is, for pooling by artist: the album artist of a track of an ordinary
    album, the track artist of a singleton or a compilation's track ("" when unknown)."""
    if album is not None and not is_compilation(album):
        return (album.get("albumartist") or "").strip()
    return (item.get("artist") or "").strip()


def group_units(items: Iterable[Item], source: str) -> list[Unit]:
    """Group `items` into units, in the order they come.

    source "album": an item of a (non-compilation) album brings in every track of that album,
    so that `beet genreclass artist:X` judges X's albums whole; the caller's `Item` objects are
    used where they are among them (an import task's items, whose files are written later).
    source "artist": `_artist_units`. source "track": one unit per item.
    """
    if source == "track":
        return [Unit([item]) for item in items]
    if source == "artist":
        return _artist_units(list(items))
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


def _artist_units(items: list[Item]) -> list[Unit]:
    """One unit per artist (`artist_of`) among `items`, and nothing else: an artist's other
    tracks in the library are not brought in, so a run (or an import) is judged on what it
    was given. A track with no artist is judged alone. An album joins the verdict of its
    artist's unit when every one of its tracks is in that unit."""
    albums: dict[int, Album | None] = {}  # album id -> album; one query each
    by_artist: dict[str, Unit] = {}
    units: list[Unit] = []
    for item in items:
        album_id = item.get("album_id")
        if album_id is not None and album_id not in albums:
            albums[album_id] = item.get_album()
        artist = artist_of(item, albums.get(album_id) if album_id is not None else None)
        if not artist:
            units.append(Unit([item]))
            continue
        key = artist.casefold()  # "The Band" and "the band" are one artist
        if key not in by_artist:
            by_artist[key] = Unit([], "artist", ("artist", key), f"{artist} (artist)")
            units.append(by_artist[key])
        by_artist[key].items.append(item)
    unit_of = {item.id: unit for unit in by_artist.values() for item in unit.items}
    for album in albums.values():
        ids = [track.id for track in album.items()] if album is not None else []
        unit = unit_of.get(ids[0]) if ids else None
        if unit is not None and all(unit_of.get(i) is unit for i in ids):
            unit.albums.append(album)
    return units
