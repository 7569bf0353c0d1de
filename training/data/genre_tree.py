"""beets' genre tree (lastgenre's ``genres-tree.yaml``), and rolling rare genres up into their parents.

The tree is read from the installed beets package, where lastgenre keeps it as data beside its
code; it is never copied here. Its names are lower case ("delta blues" under "blues", "synthpop"
under "pop" and under "electronic"); a genre found in several branches takes the first, as lastgenre's
own `find_parents` does. Names are compared with `training.data.genres.genre_key`, so "Hip-Hop" is
the tree's "hip hop".
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.data.genres import canonical_genre, genre_key
from training.data.tracks import Track
from training.errors import ConfigError

TREE_FILE = "genres-tree.yaml"


def installed_tree_path() -> Path:
    """The tree file of the installed beets' lastgenre plugin (its package is located, not imported:
    importing lastgenre needs pylast). Raises `ConfigError` when beets has no such file."""
    spec = importlib.util.find_spec("beetsplug.lastgenre")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if os.path.isfile(os.path.join(folder, TREE_FILE)):
            return Path(folder) / TREE_FILE
    raise ConfigError(f"beets' lastgenre genre tree ({TREE_FILE}) is not installed; --rollup needs beets >= 1.4")


@dataclasses.dataclass(frozen=True)
class GenreTree:
    """Parent of each genre of the tree: {genre_key(name): (name, parent name or None)}."""

    nodes: Mapping[str, tuple[str, str | None]]

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> GenreTree:
        """Read a lastgenre tree: nested lists of names and {name: [children]} mappings."""
        import yaml

        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        nodes: dict[str, tuple[str, str | None]] = {}

        def walk(node: Any, parent: str | None) -> None:
            if isinstance(node, dict):
                for name, children in node.items():
                    nodes.setdefault(genre_key(str(name)), (str(name), parent))
                    walk(children, str(name))
            elif isinstance(node, list):
                for child in node:
                    walk(child, parent)
            elif node is not None:
                nodes.setdefault(genre_key(str(node)), (str(node), parent))

        walk(data, None)
        return cls(nodes)

    @classmethod
    def installed(cls) -> GenreTree:
        """The installed beets' tree (`installed_tree_path`)."""
        return cls.from_yaml(installed_tree_path())

    def parent(self, genre: str) -> str | None:
        """The tree's name of `genre`'s parent; None for a top-level genre or one not in the tree."""
        node = self.nodes.get(genre_key(genre))
        return node[1] if node else None

    def depth(self, genre: str) -> int:
        """0 for a top-level genre, 1 beneath it, ...; -1 for a genre not in the tree."""
        if genre_key(genre) not in self.nodes:
            return -1
        depth, name = 0, self.parent(genre)
        while name is not None:
            depth, name = depth + 1, self.parent(name)
        return depth


def roll_up(
    tracks: Sequence[Track],
    tree: GenreTree,
    min_tracks: int,
    vocabulary: Sequence[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[list[Track], dict[str, str]]:
    """Replace each genre that is short by its parent in `tree` until it is not, deepest first.

    Short: with `vocabulary`, a genre not in it; otherwise one that fewer than `min_tracks` tracks
    may carry (a set track counts for each of its genres). A track's set takes the parent in the
    genre's place (two genres becoming one count once), so "Delta Blues" 3 + "Chicago Blues" 4 +
    "Blues" 5 train one Blues of 12. A parent is spelt as the tracks already spell it, else as
    `canonical_genre` spells the tree's name with `aliases` ("hip hop" -> "Hip-Hop"). Genres
    without a parent (top level, or not in the tree) stay as they are, for `select_labels` to
    keep or leave out. Returns the tracks and {genre: the genre it was finally rolled up into}.
    """
    keys = {genre_key(v) for v in vocabulary or []}
    tracks = list(tracks)
    merged: dict[str, str] = {}
    while True:
        counts = Counter(g for t in tracks for g in t.genres)
        spelling = {genre_key(g): g for g in counts} | {genre_key(v): v for v in vocabulary or []}
        short = [
            g for g in counts
            if (genre_key(g) not in keys if vocabulary else counts[g] < min_tracks) and tree.parent(g) is not None
        ]  # fmt: skip
        if not short:
            break
        deepest = max(tree.depth(g) for g in short)
        moving = {g for g in short if tree.depth(g) == deepest}
        parents = {}
        for g in moving:
            name = tree.parent(g)
            parents[g] = spelling.get(genre_key(name)) or canonical_genre(name, aliases, list(spelling.values()))
        for child, parent in list(merged.items()):  # what was merged into a moving genre moves on with it
            if child != parent and parent in parents:
                merged[child] = parents[parent]
        merged.update(parents)
        tracks = [_replaced(t, parents) for t in tracks]
    return tracks, {child: parent for child, parent in merged.items() if genre_key(child) != genre_key(parent)}


def _replaced(track: Track, parents: Mapping[str, str]) -> Track:
    if not any(g in parents for g in track.genres):
        return track
    genres = [parents.get(g, g) for g in track.genres]
    return Track.with_genres(track.path, genres, track.group, track.source, track.split)


def rollup_text(merged: Mapping[str, str], before: Mapping[str, int]) -> list[str]:
    """What `roll_up` merged, one line per parent: 'Blues <- Chicago Blues 4, Delta Blues 3'. `before`:
    tracks per genre before; a genre only passed through (Indie Rock -> Alternative Rock -> Rock, with
    no Alternative Rock track) is not listed."""
    into: dict[str, list[str]] = {}
    for child, parent in merged.items():
        if before.get(child, 0):
            into.setdefault(parent, []).append(child)
    return [
        f"{parent} <- " + ", ".join(f"{child} {before.get(child, 0)}" for child in sorted(children))
        for parent, children in sorted(into.items())
    ]
