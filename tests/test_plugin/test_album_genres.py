"""Genres the way a beets library holds them: one verdict per album, compilations per track, the
user's own genre names (`map`), and retraining on a "Various Artists" compilation."""

from __future__ import annotations

import json
from pathlib import Path

import mutagen
import numpy as np
import pytest
from helpers.audio import genre_sound, write_audio, write_tone
from helpers.files import digest, genres_in_file, set_tags
from helpers.library import BeetsLibrary, only_error


def _tag(path: Path, artist: str, album: str, genre: str | None = None) -> Path:
    return set_tags(path, title=path.stem, artist=artist, album=album, genre=genre)


def _album(folder: Path, artist: str, album: str, lows: int, highs: int) -> None:
    folder.mkdir()
    for i in range(lows):
        _tag(write_tone(folder / f"{album}-low{i}.flac", 200.0, seconds=5.0), artist, album)
    for i in range(highs):
        _tag(write_tone(folder / f"{album}-high{i}.flac", 5000.0, seconds=5.0), artist, album)


def _library_genres(beets: BeetsLibrary) -> dict[str, list[str]]:
    """Title -> the genre tag in the library's copy."""
    return {mutagen.File(p)["title"][0]: genres_in_file(p) for p in beets.lib_path.rglob("*.flac")}


def _genres_by_title(beets: BeetsLibrary) -> dict[str, str]:
    """Title -> genres as the library database holds them."""
    lines = beets.run("ls", "-f", "$title\t$genres").stdout.splitlines()
    return dict(line.split("\t") for line in lines)


@pytest.fixture
def albums(make_library) -> BeetsLibrary:
    """Two albums: mostly low tones (3 low, 1 high) and mostly high (1 low, 2 high); copy + write."""
    beets = make_library(auto=True, source="album")
    beets.settings["import"].update(copy=True, write=True)
    _album(beets.music / "ann", "Ann", "Deep", lows=3, highs=1)
    _album(beets.music / "bob", "Bob", "Bright", lows=1, highs=2)
    return beets


def test_album_mode_gives_an_album_and_all_its_tracks_one_genre(albums):
    before = {p: digest(p) for p in albums.music.rglob("*.flac")}
    proc = albums.run("import", "-A", "-q", str(albums.music))
    # The originals are untouched; every copy carries its album's verdict, even the odd track out.
    assert {p: digest(p) for p in albums.music.rglob("*.flac")} == before
    tags = _library_genres(albums)
    assert tags == {
        **{f"Deep-{n}": ["Low"] for n in ("low0", "low1", "low2", "high0")},
        **{f"Bright-{n}": ["High"] for n in ("low0", "high0", "high1")},
    }
    # The album's own field, which `beet ls -a` shows.
    assert sorted(albums.run("ls", "-a", "-f", "$album: $genres").stdout.split()) == sorted(
        "Bright: High Deep: Low".split()
    )
    # Pooled: the mean of 3 tracks at Low ~1 and one at High ~1 is Low 0.75.
    assert "Low on 4 tracks (Low 0.75, High 0.25)" in proc.stdout, proc.stdout
    assert "genreclass: 7 tracks classified (in 2 albums); 7 tracks decoded in" in proc.stdout
    # Reruns skip albums already done; --pretend says so, per album.
    rerun = albums.run("genreclass", "-p")
    assert "Ann - Deep\n  skipped: already classified by tiny@1" in rerun.stdout
    assert "genreclass: pretend: 0 tracks classified, 7 skipped (in 2 albums)\n" in rerun.stdout


def test_album_mode_leaves_the_users_own_genres_and_track_mode_judges_each_track(albums):
    albums.settings["genreclass"]["auto"] = False
    _tag(albums.music / "ann" / "Deep-high0.flac", "Ann", "Deep", genre="Shoegaze")
    albums.run("import", "-A", "-q", str(albums.music))
    proc = albums.run("genreclass", "album:Deep")  # a query on tracks brings in their whole album
    assert "Low on 3 tracks (Low 0.75, High 0.25); 1 track keeps its own genres" in proc.stdout, proc.stdout
    genres = _genres_by_title(albums)
    assert genres["Deep-high0"] == "Shoegaze"  # theirs, never touched; it still informed the verdict
    assert [genres[f"Deep-low{i}"] for i in range(3)] == ["Low"] * 3
    # The album's field (beets took it from the user's tag at import) stays the user's concern.
    assert albums.run("ls", "-a", "-f", "$album: $genres", "album:Deep").stdout.strip() == "Deep: Shoegaze"
    # Per track (-s track over the album setting, as lastgenre's -s), the odd tracks out get their own verdict.
    proc = albums.run("genreclass", "-s", "track", "album:Bright")
    genres = _genres_by_title(albums)
    assert [genres[f"Bright-{n}"] for n in ("low0", "high0", "high1")] == ["Low", "High", "High"]
    assert "genreclass: 3 tracks classified; 3 tracks decoded in" in proc.stdout


def test_a_compilation_is_judged_track_by_track(make_library):
    beets = make_library(auto=True, source="album")
    folder = beets.music / "mix"
    folder.mkdir()
    for i, freq in enumerate((200.0, 5000.0, 200.0, 5000.0)):
        _tag(write_tone(folder / f"t{i}-{int(freq)}.flac", freq, seconds=5.0), f"Artist {i}", "Mix")
    proc = beets.run("import", "-A", "-q", str(beets.music))
    assert beets.run("ls", "-a", "-f", "$albumartist $comp").stdout.strip() == "Various Artists True"
    assert {name: genres_in_file(folder / name) for name in beets.field("genres")} == {
        "t0-200.flac": ["Low"], "t1-5000.flac": ["High"], "t2-200.flac": ["Low"], "t3-5000.flac": ["High"],
    }  # fmt: skip
    assert "genreclass: 4 tracks classified; 4 tracks decoded in" in proc.stdout  # alone, not "in 1 album"


def test_singletons_are_judged_track_by_track_in_album_mode(make_library):
    beets = make_library(auto=True, source="album")
    for i, freq in enumerate((200.0, 200.0, 5000.0)):
        _tag(write_tone(beets.music / f"s{i}.flac", freq, seconds=5.0), "Same Artist", "Same Album")
    proc = beets.run("import", "-A", "-s", "-q", str(beets.music))
    assert {p.name: genres_in_file(p) for p in beets.music.iterdir()} == {
        "s0.flac": ["Low"], "s1.flac": ["Low"], "s2.flac": ["High"],
    }  # fmt: skip
    assert "genreclass: 3 tracks classified; 3 tracks decoded in" in proc.stdout


def test_map_writes_the_users_spelling_and_drops_labels(make_library):
    beets = make_library(source="track", min_confidence=0.0, map={"Low": "Bass Music", "High": ""})
    for name, freq in (("low", 200.0), ("high", 5000.0)):
        write_tone(beets.music / f"{name}.flac", freq, seconds=5.0)
    beets.run("import", "-A", "-q", str(beets.music))
    beets.run("genreclass")
    # High is never written: the next most probable label (Low, in the user's spelling) takes its place.
    assert {p.name: genres_in_file(p) for p in beets.music.iterdir()} == {
        "low.flac": ["Bass Music"],
        "high.flac": ["Bass Music"],
    }
    # ... but only if it reaches min_confidence itself: then the track is uncertain and keeps no genre.
    beets.settings["genreclass"]["min_confidence"] = 0.3
    proc = beets.run("genreclass", "-f")
    assert "high.flac\n  uncertain: no genre reaches min_confidence 0.3 (High 1.00, Low 0.00)" in proc.stdout
    assert "genreclass: 0 tracks classified, 1 unchanged, 1 uncertain; 2 tracks decoded in" in proc.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"map": {"Rokc": "Rock", "Low": "Bass"}}, "'map' has a key the model does not know: Rokc; its labels are"),
        ({"map": "Low"}, "'map' must be a mapping of model labels to genres, got 'Low'"),
        ({"map": {"Low": ["a", "b"]}}, "'map': Low must map to a genre name or nothing"),
        ({"source": "albums"}, "source"),
    ],
)
def test_bad_new_settings_give_one_line_and_touch_nothing(make_library, setting, message):
    beets = make_library(**setting)
    write_tone(beets.music / "low.flac", 200.0, seconds=5.0)
    beets.run("import", "-A", "-q", str(beets.music))
    before = digest(beets.music / "low.flac")
    error = only_error(beets.run("genreclass", check=False))
    assert error.startswith("genreclass: ") and message in error
    assert digest(beets.music / "low.flac") == before


@pytest.mark.slow  # embeddings of 48 tracks, a head fitted on them: 8-12 s
def test_retraining_on_a_compilation_folds_by_track_artist(tmp_path, make_library):
    """A "Various Artists" folder (one album, comp) of 48 tracks by 48 artists trains: the estimate's
    folds group by track artist, so its 48 artists are 48 groups, none on both sides of a fold."""
    beets = make_library(model="")  # the bundled default: a head on its embedding (no torch)
    rng = np.random.default_rng(1)
    folder = beets.music / "va"
    folder.mkdir()
    for i in range(48):
        genre = ("Drone", "Chime", "Hiss")[i % 3]
        audio = genre_sound(genre.lower(), rng, 4.0, 22050)
        _tag(write_audio(folder / f"{i:02d}.flac", audio, 22050), f"Artist {i}", "Sampler", genre=genre)
    beets.run("import", "-A", "-q", str(beets.music))
    assert beets.run("ls", "-a", "-f", "$albumartist $comp").stdout.strip() == "Various Artists True"
    out = tmp_path / "va.onnx"
    proc = beets.run("genreclass-train", "--min-tracks", "3", "--out", str(out))
    assert "genreclass-train: 3 genres: Chime, Drone, Hiss; 48 tracks by 48 artists" in proc.stderr, proc.stderr
    assert "estimate: 5-fold cross-validation over artists" in proc.stdout
    assert ": 48 tracks by 48 artists" in proc.stdout, proc.stdout  # one album artist, 48 groups
    card = json.loads((tmp_path / "va.card.json").read_text())
    assert card["data"]["artists"] == 48 and card["estimate"]["n_artists"] == 48 and card["trained_on"] == 48
    assert out.is_file()
