"""Other taxonomies' genres -> the set of our labels a clip may carry, one committed mapping per taxonomy.

A dataset labelled in another taxonomy (AllMusic's, for the 4Q clips) gives each clip several
genres, filed per artist: "Pop/Rock; Electronic". Its mapping (``taxonomies/<name>.yaml``: the
datasets it covers, and ``genres: {their genre: [our labels]}``) turns them into a set: the union of
what each maps to. A genre mapped to ``[]`` says nothing about the sound; a genre the mapping lacks
is an error (a new genre in the data must be decided, not dropped silently). Datasets without a
mapping use our own names, spelled canonically (`training.data.genres.canonical_genre`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from training.data.genres import canonical_genre
from training.errors import DatasetError

TAXONOMY_DIR = Path(__file__).with_name("taxonomies")
SEPARATOR = ";"  # between the genres of one clip in a manifest's `genres` column


@functools.cache
def mappings() -> dict[str, dict[str, tuple[str, ...]]]:
    """{dataset: {their genre: our labels}} from every ``taxonomies/*.yaml``."""
    import yaml

    by_dataset: dict[str, dict[str, tuple[str, ...]]] = {}
    for path in sorted(TAXONOMY_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        genres = {str(k): tuple(canonical_genre(v) for v in (vs or [])) for k, vs in data["genres"].items()}
        for dataset in data["datasets"]:
            by_dataset[str(dataset)] = genres
    return by_dataset


def label_set(dataset: str, genres: Iterable[str]) -> tuple[str, ...]:
    """Our labels for a clip of `dataset` filed under `genres` (sorted, no repeats; may be empty)."""
    mapping = mappings().get(dataset)
    out: set[str] = set()
    for genre in (g.strip() for g in genres):
        if not genre:
            continue
        if mapping is None:
            out.add(canonical_genre(genre))
        elif genre in mapping:
            out.update(mapping[genre])
        else:
            raise DatasetError(f"dataset {dataset}: genre {genre!r} is not in its taxonomy mapping ({TAXONOMY_DIR})")
    return tuple(sorted(out))


def split_genres(text: str) -> list[str]:
    """A manifest cell's genres: ``"Pop/Rock; Electronic"`` -> ["Pop/Rock", "Electronic"]."""
    return [g.strip() for g in text.split(SEPARATOR) if g.strip()]
