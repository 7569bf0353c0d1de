"""lastgenre's habits on real files: a `fallback` genre for uncertain tracks, and `keep_existing`
adding genreclass's genres to a track's own instead of replacing them, with the provenance
rules, `map`, `--force`, `--pretend` and album mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.audio import white_noise, write_audio, write_tone
from helpers.files import digest, genres_in_file, set_tags
from helpers.library import BeetsLibrary
from helpers.models import build_tiny_model


def _noise(beets: BeetsLibrary, name: str) -> Path:
    """White noise: Low and High about equally likely, so uncertain at a high min_confidence."""
    return write_audio(beets.music / name, white_noise(5.0, 44100, np.random.default_rng(0)))


def _genres(beets: BeetsLibrary, field: str = "genres") -> dict[str, str]:
    return beets.field(field)


def test_an_uncertain_track_gets_the_fallback_and_says_so(make_library):
    beets = make_library(min_confidence=0.9, fallback="Unknown")
    path = _noise(beets, "noise.flac")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    before = digest(path)
    pretend = beets.run("genreclass", "-p")
    assert "uncertain: no genre reaches min_confidence 0.9" in pretend.stdout
    assert "would get the fallback genre Unknown" in pretend.stdout and "+ Unknown" in pretend.stdout
    assert "pretend: 0 tracks classified, 1 uncertain;" in pretend.stdout
    assert digest(path) == before and _genres(beets) == {"noise.flac": ""}
    run = beets.run("genreclass")
    assert "gets the fallback genre Unknown" in run.stdout and "1 uncertain" in run.stdout
    assert _genres(beets) == {"noise.flac": "Unknown"} and genres_in_file(path) == ["Unknown"]
    assert _genres(beets, "genreclass_genres") == {"noise.flac": "Unknown"}  # genreclass's: a verdict replaces it
    assert "skipped: uncertain last time" in beets.run("genreclass", "-p").stdout
    beets.settings["genreclass"]["min_confidence"] = 0.5  # now sure enough: its own fallback is replaced
    assert "1 track classified" in beets.run("genreclass").stdout
    assert genres_in_file(path) in (["Low"], ["High"])


def test_without_a_fallback_nothing_is_written_and_setting_one_later_gives_it(make_library):
    beets = make_library(min_confidence=0.9)
    path = _noise(beets, "noise.mp3")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    first = beets.run("genreclass")
    assert "1 uncertain" in first.stdout and "fallback genre" not in first.stdout
    assert genres_in_file(path) == [] and _genres(beets) == {"noise.mp3": ""}
    beets.settings["genreclass"]["fallback"] = "Unknown"
    again = beets.run("genreclass")  # no longer skipped as "uncertain last time": it has no genre yet
    assert "gets the fallback genre Unknown" in again.stdout
    assert genres_in_file(path) == ["Unknown"]


def test_a_label_map_drops_leaves_the_track_uncertain_with_the_fallback(make_library):
    beets = make_library(map={"Low": ""}, fallback="Unknown")
    path = write_tone(beets.music / "low.flac", 200.0, seconds=5.0)
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    proc = beets.run("genreclass")
    assert "uncertain" in proc.stdout and "gets the fallback genre Unknown" in proc.stdout
    assert genres_in_file(path) == ["Unknown"]


def test_an_uncertain_track_keeps_its_own_genres_instead_of_the_fallback(make_library):
    beets = make_library(min_confidence=0.9, fallback="Unknown", keep_existing=True)
    path = set_tags(_noise(beets, "noise.flac"), genre="Jazz")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    proc = beets.run("genreclass", "-f")
    assert "1 uncertain" in proc.stdout and "fallback genre" not in proc.stdout
    assert genres_in_file(path) == ["Jazz"] and _genres(beets) == {"noise.flac": "Jazz"}


def test_keep_existing_adds_to_the_users_genres_and_later_runs_replace_only_genreclass_s(make_library, tmp_path):
    beets = make_library(keep_existing=True)
    path = set_tags(write_tone(beets.music / "low.flac", 200.0, seconds=5.0), genre="Jazz")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    # As lastgenre's keep_existing: it changes what --force does; without it the user's genres are left alone.
    assert "skipped: already has genres (Jazz)" in beets.run("genreclass", "-p").stdout
    before = digest(path)
    pretend = beets.run("genreclass", "-p", "-f")
    assert "would be Jazz; Low" in pretend.stdout and digest(path) == before
    beets.run("genreclass", "-f")
    assert genres_in_file(path) == ["Jazz", "Low"]
    assert _genres(beets, "genreclass_genres") == {"low.flac": "Low"}  # only its own part is genreclass's
    assert "skipped: already classified by tiny@1" in beets.run("genreclass", "-p").stdout
    # A new model (other labels) replaces its own part, unforced; the user's Jazz stays first.
    beets.settings["genreclass"]["model"] = str(build_tiny_model(tmp_path / "v2.onnx", ("Deep", "Bright"), version="2"))
    assert "1 track classified" in beets.run("genreclass").stdout
    assert genres_in_file(path) == ["Jazz", "Deep"]
    # --force without keep_existing replaces them all, as it always has.
    beets.settings["genreclass"]["keep_existing"] = False
    beets.run("genreclass", "-f")
    assert genres_in_file(path) == ["Deep"] and _genres(beets, "genreclass_genres") == {"low.flac": "Deep"}


def test_keep_existing_when_the_user_already_has_the_genre_records_nothing_as_genreclass_s(make_library):
    beets = make_library(keep_existing=True)
    path = set_tags(write_tone(beets.music / "low.flac", 200.0, seconds=5.0), genre="Low")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    assert "1 unchanged" in beets.run("genreclass", "-f").stdout
    assert genres_in_file(path) == ["Low"]
    # Still the user's: skipped, as any track with genres of its own, not shown as a correction.
    rerun = beets.run("genreclass")
    assert "1 skipped" in rerun.stdout and "keeps" not in rerun.stdout


@pytest.fixture
def album(make_library) -> BeetsLibrary:
    """One album of three low tones, the first tagged Jazz by its owner; copy + write on import."""
    beets = make_library(source="album", keep_existing=True)
    beets.settings["import"].update(copy=True, write=True)
    for i in range(3):
        set_tags(write_tone(beets.music / f"t{i}.flac", 200.0, seconds=5.0), title=f"t{i}", artist="Ann",
                 album="Deep", genre="Jazz" if i == 0 else None)  # fmt: skip
    beets.run("import", "-A", "-q", str(beets.music))
    return beets


def _titles(beets: BeetsLibrary) -> dict[str, str]:
    return dict(line.split("\t") for line in beets.run("ls", "-f", "$title\t$genres").stdout.splitlines())


def test_keep_existing_in_album_mode(album):
    unforced = album.run("genreclass")
    assert "Ann - Deep - t0: keeps Jazz: already has genres (Jazz)" in unforced.stdout
    assert _titles(album) == {"t0": "Jazz", "t1": "Low", "t2": "Low"}
    forced = album.run("genreclass", "-f")
    assert "Low on 3 tracks" in forced.stdout and "t0: Jazz; Low (its own kept)" in forced.stdout
    assert _titles(album) == {"t0": "Jazz; Low", "t1": "Low", "t2": "Low"}
    files = {p.stem: genres_in_file(p) for p in album.lib_path.rglob("*.flac")}
    assert sorted(files.values()) == [["Jazz", "Low"], ["Low"], ["Low"]]


def test_an_uncertain_album_gives_the_fallback_to_its_tracks_without_genres(make_library):
    beets = make_library(source="album", min_confidence=0.9, fallback="Unknown")
    rng = np.random.default_rng(1)
    for i in range(2):
        path = write_audio(beets.music / f"n{i}.flac", white_noise(5.0, 44100, rng))
        set_tags(path, title=f"n{i}", artist="Noise", album="Hiss", genre="Jazz" if i == 0 else None)
    beets.run("import", "-A", "-q", str(beets.music))
    proc = beets.run("genreclass")
    assert "gets the fallback genre Unknown on 1 track\n" in proc.stdout and "1 uncertain" in proc.stdout
    assert _titles(beets) == {"n0": "Jazz", "n1": "Unknown"}


def test_on_import_the_fallback_is_written_into_the_librarys_copy_only(make_library):
    beets = make_library(auto=True, min_confidence=0.9, fallback="Unknown")
    beets.settings["import"].update(copy=True, write=True)
    original = _noise(beets, "noise.flac")
    before = digest(original)
    proc = beets.run("import", "-A", "-s", "-q", str(beets.music))
    assert "gets the fallback genre Unknown" in proc.stdout and "1 uncertain" in proc.stdout
    assert digest(original) == before
    (copy,) = beets.lib_path.rglob("*.flac")
    assert genres_in_file(copy) == ["Unknown"]
