"""Canonical genre names: free-form tag strings -> one vocabulary; and which labels a model learns.

"hip hop", "HipHop", "rap" all become "Hip-Hop"; case and punctuation never split a genre.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from training.errors import ConfigError, NotEnoughData

if TYPE_CHECKING:  # training.data.tracks imports this module
    from training.data.tracks import Track

# Keys are normalised with `genre_key`; values are the canonical spelling.
DEFAULT_ALIASES: dict[str, str] = {
    "hiphop": "Hip-Hop",
    "rap": "Hip-Hop",
    "rnb": "R&B",
    "randb": "R&B",
    "rhythmandblues": "R&B",
    "electronica": "Electronic",
    "electro": "Electronic",
    "edm": "Electronic",
    "dance": "Electronic",
    "heavymetal": "Metal",
    "rocknroll": "Rock",
    "rockandroll": "Rock",
    "classicalmusic": "Classical",
    "countrymusic": "Country",
    "worldmusic": "World",  # beets' genre tree (lastgenre) says "world music"
}


def genre_key(name: str) -> str:
    """Comparison key: lower case, letters and digits only ('Hip-Hop' -> 'hiphop')."""
    return re.sub(r"[^0-9a-z]+", "", name.lower().replace("&", "and"))


def canonical_genre(name: str, aliases: Mapping[str, str] | None = None, vocabulary: list[str] | None = None) -> str:
    """Canonical spelling of `name`.

    aliases: extra {alias: canonical} pairs (keys compared with `genre_key`), tried before
        the defaults. vocabulary: known canonical labels; a name equal to one of them up to
        case and punctuation takes its spelling. Otherwise the name is title-cased.
    """
    key = genre_key(name)
    table = {genre_key(k): v for k, v in DEFAULT_ALIASES.items()}
    table.update({genre_key(k): v for k, v in (aliases or {}).items()})
    if key in table:
        return table[key]
    for label in vocabulary or []:
        if genre_key(label) == key:
            return label
    return "-".join(part[:1].upper() + part[1:] for part in name.strip().split("-")) if name.strip() else name


def shared_label_indices(new_labels: Sequence[str], old_labels: Sequence[str]) -> dict[int, int]:
    """{index in `new_labels`: index in `old_labels`} for the genres both lists have: equal up to
    case and punctuation ('hip hop' and 'Hip-Hop'), or the same genre under the default aliases
    ('rap' and 'Hip-Hop', 'rnb' and 'R&B', 'world music' and 'World'), so two vocabularies, a
    bundled model's and a library's own, are compared on every genre they share."""

    def key(label: str) -> str:
        return genre_key(canonical_genre(label))

    old = {key(label): j for j, label in enumerate(old_labels)}
    return {i: old[key(label)] for i, label in enumerate(new_labels) if key(label) in old}


def read_aliases(path: str | os.PathLike[str]) -> dict[str, str]:
    """An alias file: a YAML mapping of spellings to canonical genres (``hip hop: Hip-Hop``).

    Raises `ConfigError` (a ValueError) saying what is wrong with the file.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            aliases = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the alias file {path}: {exc}") from None
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ConfigError(f"the alias file {path} must map spellings to genre names, e.g. 'hip hop: Hip-Hop'")
    return {str(k): v for k, v in aliases.items()}


def select_labels(
    tracks: Sequence[Track], vocabulary: Sequence[str] | None, min_tracks: int, drop_rare: bool = True
) -> tuple[list[Track], list[str]]:
    """The tracks a model learns from and its labels (sorted, or in `vocabulary`'s order).

    vocabulary: the labels to learn; names match up to case and punctuation and give the
    spelling, and each needs at least 2 tracks (one to train, one to check). Without it, the
    labels with at least `min_tracks` tracks; the others are left out (`drop_rare`) or, when
    not, refused. Raises `NotEnoughData` naming the labels that fall short.
    """
    counts = Counter(g for t in tracks for g in t.genres)  # tracks that may carry each label
    if vocabulary:
        spelling = {genre_key(v): v for v in vocabulary}
        kept = []
        for t in tracks:
            respelt = [spelling[genre_key(g)] for g in t.genres if genre_key(g) in spelling]
            if len(t.genres) == 1 and respelt:
                kept.append(dataclasses.replace(t, label=respelt[0], genres=tuple(respelt)))
            elif respelt:
                kept.append(type(t).with_genres(t.path, respelt, t.group, t.source, t.split))
        have = Counter(g for t in kept for g in t.genres)
        short = [v for v in vocabulary if have[v] < 2]
        if short:
            listing = ", ".join(f"{v} ({have[v]})" for v in short)
            raise NotEnoughData(
                f"every vocabulary genre needs at least 2 tracks (one to train, one to check); short: {listing}"
            )
        return kept, list(vocabulary)
    rare = sorted(label for label, n in counts.items() if n < min_tracks)
    if rare and not drop_rare:
        listing = ", ".join(f"{label} ({counts[label]})" for label in rare)
        raise NotEnoughData(
            f"labels with fewer than --min-tracks {min_tracks} tracks: {listing}; add tracks or remove them"
        )
    labels = sorted(set(counts) - set(rare))
    if len(labels) < 2:
        best = ", ".join(f"{label} {n} (needs {max(0, min_tracks - n)} more)" for label, n in counts.most_common(5))
        raise NotEnoughData(
            f"need at least 2 genres with {min_tracks} or more tagged tracks each, found {len(labels)}"
            + (f"; most common: {best}" if best else "; no track with genres matched")
        )
    restricted = [t.restricted(labels) for t in tracks]
    return [t for t in restricted if t is not None], labels
