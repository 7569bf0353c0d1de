"""What a file holds, read independently of the code under test: its bytes' digest and its tags
as mutagen reads them; and tags set on generated files before a test imports them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mutagen
from mutagen.id3 import ID3


def digest(path: Path) -> str:
    """SHA-256 of the file's bytes: equal digests, untouched file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def genres_in_file(path: Path) -> list[str]:
    """The genre tag as stored in the file (ID3 TCON, Vorbis/FLAC GENRE), read with mutagen."""
    f = mutagen.File(path)
    if f is None or f.tags is None:
        return []
    if "TCON" in f.tags:
        return list(f.tags["TCON"].text)
    return list(f.tags.get("genre", []) or f.tags.get("GENRE", []))


def all_tags(path: Path) -> dict[str, str]:
    """Every tag of the file as mutagen reads it: {key: value text}; {} for a file it cannot read."""
    try:
        f = mutagen.File(path)
    except mutagen.MutagenError:
        return {}  # damaged beyond reading: a byte digest guards such a file
    if f is None or f.tags is None:
        return {}
    if isinstance(f.tags, ID3):
        return {key: str(frame) for key, frame in f.tags.items()}
    return {key: "|".join(map(str, values)) for key, values in f.tags.as_dict().items()}


def set_tags(path: Path, **fields: str | None) -> Path:
    """Set Vorbis-comment tags (FLAC, Ogg) on a generated file: ``set_tags(p, artist="Ann", genre=None)``;
    a field given as None is left out."""
    f = mutagen.File(path)
    for key, value in fields.items():
        if value is not None:
            f[key] = value
    f.save()
    return path
