"""Labelled tracks from the places music collections live.

Every loader returns a list of `Track`; nothing is decoded here. `load_data` parses the
command line's DATA arguments: a folder, ``gtzan:PATH``, ``fma:AUDIO_DIR:TRACKS_CSV``, a
manifest ``.csv``. `load_beets` reads a beets library (`beet genreclass-train`).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from genre_model.provenance import learnable, users_genres
from training.data.genres import canonical_genre, genre_key
from training.errors import DatasetError

AUDIO_EXTENSIONS = (".mp3", ".flac", ".ogg", ".opus", ".wav", ".aif", ".aiff", ".m4a", ".au", ".wma")


@dataclasses.dataclass(frozen=True)
class Track:
    """One labelled audio file.

    label: its genre; for a clip that may carry several (`genres`), their names joined by "; ",
        a description, never a class of its own.
    group: tracks sharing a group (an artist, an album artist, a fixed list) must stay on one
        side of any split. split: a split given by the dataset ("train"/"valid"/"test") or "".
    source: the dataset it came from, for per-source evaluation.
    genres: the labels the clip may carry, sorted (its set: one is right, which is not known);
        empty when given means ``(label,)``.
    """

    path: str
    label: str
    group: str
    source: str
    split: str = ""
    genres: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.genres:
            object.__setattr__(self, "genres", (self.label,))

    @classmethod
    def with_genres(cls, path: str, genres: Sequence[str], group: str, source: str, split: str = "") -> Track:
        """A track that may carry any of `genres` (one or more)."""
        ordered = tuple(sorted(set(genres)))
        return cls(path, "; ".join(ordered), group, source, split, ordered)

    def label_indices(self, labels: Sequence[str]) -> list[int]:
        """This track's set as indices into `labels` (genres not among them dropped)."""
        return [labels.index(g) for g in self.genres if g in labels]

    def restricted(self, labels: Collection[str]) -> Track | None:
        """This track with only the genres among `labels`; None when none is."""
        kept = [g for g in self.genres if g in labels]
        if kept == list(self.genres):
            return self
        return Track.with_genres(self.path, kept, self.group, self.source, self.split) if kept else None


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def load_folder(root: str | os.PathLike[str], source: str = "folder") -> list[Track]:
    """``ROOT/<Genre>/**/*.ext``: the folder name is the label; each file is its own group."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root}")
    tracks = [
        Track(str(f), canonical_genre(genre_dir.name), str(f), source)
        for genre_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for f in _audio_files(genre_dir)
    ]
    if not tracks:
        raise DatasetError(f"{root}: no audio files in genre sub-folders (expected ROOT/<Genre>/<file>)")
    return tracks


def load_gtzan(root: str | os.PathLike[str], lists_dir: str | os.PathLike[str] | None = None) -> list[Track]:
    """GTZAN (``ROOT/<genre>/<genre>.000NN.wav``), labels canonicalised ('hiphop' -> 'Hip-Hop').

    With the fault-filtered lists (``train_filtered.txt``, ``valid_filtered.txt``,
    ``test_filtered.txt`` in `lists_dir`, default ROOT; lines like ``blues/blues.00029.wav``)
    only listed files are kept and the list is their split and group, which is
    artist-disjoint. Without them every file is its own group: artists may then repeat
    across a split, so prefer the lists.
    """
    root = Path(root)
    tracks = load_folder(root, source="gtzan")
    lists = Path(lists_dir) if lists_dir else root
    listed: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        list_file = lists / f"{split}_filtered.txt"
        if list_file.is_file():
            for line in list_file.read_text().split():
                listed[Path(line).name] = split
    if not listed:
        return tracks
    return [
        dataclasses.replace(t, group=f"gtzan-{listed[Path(t.path).name]}", split=listed[Path(t.path).name])
        for t in tracks
        if Path(t.path).name in listed
    ]


def _fma_columns(reader) -> list[str]:
    # tracks.csv has three header rows: top level (forward-filled), sub-level, then 'track_id'.
    top, sub = next(reader), next(reader)
    next(reader)
    names, current = [], ""
    for t, s in zip(top, sub, strict=True):
        current = t or current
        names.append(f"{current}.{s}" if s else "track_id")
    return names


def load_fma(
    audio_dir: str | os.PathLike[str], tracks_csv: str | os.PathLike[str], subset: str | None = None
) -> list[Track]:
    """FMA: ``fma_metadata/tracks.csv`` + ``AUDIO_DIR/000/000002.mp3``.

    Label: ``track.genre_top`` (rows without one are skipped); split: ``set.split``
    ('training' -> 'train', 'validation' -> 'valid'); group: ``artist.id``; `subset` keeps
    rows whose ``set.subset`` is that subset or a smaller one (small < medium < large).
    Only tracks whose audio file exists are returned.
    """
    audio_dir, tracks_csv = Path(audio_dir), Path(tracks_csv)
    if not tracks_csv.is_file():
        raise DatasetError(f"FMA tracks.csv not found: {tracks_csv}")
    order = ["small", "medium", "large"]
    split_names = {"training": "train", "validation": "valid", "test": "test"}
    tracks = []
    with open(tracks_csv, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        cols = {name: i for i, name in enumerate(_fma_columns(reader))}
        for key in ("track.genre_top", "set.split", "set.subset", "artist.id"):
            if key not in cols:
                raise DatasetError(f"{tracks_csv}: column {key} missing; is this FMA's tracks.csv?")
        for row in reader:
            genre = row[cols["track.genre_top"]]
            if not genre:
                continue
            if (
                subset
                and row[cols["set.subset"]] in order
                and order.index(row[cols["set.subset"]]) > order.index(subset)
            ):
                continue
            tid = f"{int(row[cols['track_id']]):06d}"
            path = audio_dir / tid[:3] / f"{tid}.mp3"
            if path.is_file():
                split = split_names.get(row[cols["set.split"]], "")
                tracks.append(
                    Track(str(path), canonical_genre(genre), f"fma-artist-{row[cols['artist.id']]}", "fma", split)
                )
    if not tracks:
        raise DatasetError(f"no FMA track with a top genre has its audio under {audio_dir}")
    return tracks


def load_manifest(csv_path: str | os.PathLike[str]) -> list[Track]:
    """CSV with columns ``path,label[,group][,split][,dataset]``, or ``genres`` (several, ``; ``-separated)
    instead of or beside ``label``; paths relative to the CSV.

    A row's genres become the set of labels the clip may carry, through its dataset's taxonomy
    mapping when one is committed (`training.data.taxonomy`: AllMusic's for 4Q); a row whose set
    is empty (genres that say nothing about the sound) is left out.
    """
    from training.data.taxonomy import label_set, split_genres

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"manifest not found: {csv_path}")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0] or not {"label", "genres"} & set(rows[0]):
        raise DatasetError(f"{csv_path}: a manifest needs a header with 'path' and 'label' or 'genres'")
    base = csv_path.parent
    tracks = []
    for row in rows:
        path = base / row["path"]
        dataset = row.get("dataset") or csv_path.stem
        named = ([row["label"]] if row.get("label") else []) + split_genres(row.get("genres") or "")
        genres = label_set(dataset, named)
        if genres:
            tracks.append(Track.with_genres(str(path), genres, row.get("group") or str(path), dataset,
                                            row.get("split") or ""))  # fmt: skip
    return tracks


def load_beets(
    lib,
    query: str | list[str] = "",
    aliases: Mapping[str, str] | None = None,
    vocabulary: Sequence[str] | None = None,
    include_predicted: bool = False,
    spellings: Sequence[str] = (),
) -> tuple[list[Track], Counter]:
    """Items of a beets `Library` matching `query` whose ``genres`` are set, as labelled tracks.

    An item's genres, canonicalised with `aliases`, are the set of labels it may carry
    (`Track.with_genres`: beets' ``genres`` is multi-valued and lastgenre writes several), not its
    first one; with `vocabulary`, only those in it are kept (an item with none keeps them all, for
    `select_labels` to leave out or `training.data.genre_tree.roll_up` to merge). The group is the album
    artist, or on compilations the track's artist (`artist_group`), so a split never puts one artist
    on both sides. Items whose genres this plugin wrote are left out unless `include_predicted`: a model
    must not learn its own guesses; genres the user changed since are the user's and are learnt from,
    and of a track whose genres genreclass added to (`keep_existing`) only the user's part
    (`genre_model.provenance`). `spellings`: known labels (e.g. the current model's) whose spelling a
    genre equal up to case and punctuation takes ("POP" -> "Pop"). returns (tracks, {reason:
    count of items left out}).
    """
    from beets import config  # load_beets is given a library: beets is there

    keys = {genre_key(v) for v in vocabulary or []}
    known = [*(vocabulary or []), *spellings]
    va_name = config["va_name"].as_str()
    tracks, left_out = [], Counter()
    for item in lib.items(query):
        genres = [canonical_genre(g, aliases, known) for g in item.get("genres") or [] if g.strip()]
        if not genres:
            left_out["no genres"] += 1
            continue
        if not include_predicted and not learnable(item):
            left_out["genres set by genreclass"] += 1
            continue
        if not include_predicted:  # of a track whose genres genreclass added to, the user's part alone
            genres = [canonical_genre(g, aliases, known) for g in users_genres(item) if g.strip()]
        in_vocabulary = [g for g in genres if genre_key(g) in keys]
        path = os.fsdecode(item.path)
        group = f"artist-{artist_group(item, va_name)}"
        tracks.append(Track.with_genres(path, in_vocabulary or genres, group, "beets"))
    return unify_spellings(tracks), left_out


def artist_group(item, va_name: str = "Various Artists") -> str:
    """The artist a beets item's hold-out group is named after.

    The album artist, so that an artist's albums stay on one side; on a compilation (``comp``
    set, or the album artist is `va_name`) the track's own artist, since its tracks are by many
    artists who must each stay on one side. Without an artist: the album (its tracks stay
    together), else the file's folder.
    """
    albumartist = (item.get("albumartist") or "").strip()
    artist = (item.get("artist") or "").strip()
    if bool(item.get("comp")) or albumartist.casefold() == va_name.casefold():
        albumartist = ""
    if albumartist or artist:
        return albumartist or artist
    album = item.get("album_id") or (item.get("album") or "").strip()
    return f"album {album}" if album else os.path.dirname(os.fsdecode(item.path))


def unify_spellings(tracks: Sequence[Track]) -> list[Track]:
    """One spelling per genre: labels equal up to case and punctuation ('CHIME', 'Chime') take
    the most common one (on a tie, the one that is neither all upper nor all lower case); a set
    track's genres are respelt one by one."""
    spellings: dict[str, Counter] = {}
    for t in tracks:
        for g in t.genres:
            spellings.setdefault(genre_key(g), Counter())[g] += 1

    def rank(item: tuple[str, int]) -> tuple[int, bool, str]:
        name, n = item
        return (-n, name.isupper() or name.islower(), name)

    chosen = {key: min(counts.items(), key=rank)[0] for key, counts in spellings.items()}
    out = []
    for t in tracks:
        respelt = [chosen[genre_key(g)] for g in t.genres]
        if len(t.genres) == 1:
            out.append(dataclasses.replace(t, label=respelt[0], genres=(respelt[0],)))
        else:
            out.append(Track.with_genres(t.path, respelt, t.group, t.source, t.split))
    return out


def _load_fma_spec(rest: str) -> list[Track]:
    parts = rest.split(":")
    if len(parts) != 2:
        raise DatasetError(f"expected fma:AUDIO_DIR:TRACKS_CSV, got {'fma:' + rest!r}")
    return load_fma(parts[0], parts[1])


# The kinds of data source a DATA argument names by a prefix: prefix -> (loader of the rest, its form).
# A new source kind is one entry here (and its loader above); manifests and folders need no prefix.
SOURCE_KINDS: dict[str, tuple[Callable[[str], list[Track]], str]] = {
    "gtzan": (load_gtzan, "gtzan:PATH"),
    "fma": (_load_fma_spec, "fma:AUDIO_DIR:TRACKS_CSV"),
}


def load_data(spec: str) -> list[Track]:
    """Parse one DATA argument (see the module docstring) and load it: a `SOURCE_KINDS` prefix, a
    manifest ``.csv`` or a folder."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in SOURCE_KINDS:
        return SOURCE_KINDS[kind][0](rest)
    if spec.lower().endswith(".csv"):
        return load_manifest(spec)
    if os.path.isdir(spec):
        return load_folder(spec)
    forms = ", ".join(form for _, form in SOURCE_KINDS.values())
    raise DatasetError(f"{spec}: not a folder, manifest .csv, {forms}")


def load_all(specs: Sequence[str], echo: Callable[[str], None]) -> list[Track]:
    """Every labelled track of the DATA specs (`load_data`), saying how many each gave; raises
    `DatasetError` when there is none."""
    tracks = []
    for spec in specs:
        found = load_data(spec)
        echo(f"{spec}: {len(found)} tracks")
        tracks += found
    if not tracks:
        raise DatasetError("no labelled tracks in the given data")
    return tracks
