"""Verdicts pooled over several tracks (an album's, an artist's) in a real library: each track's own
verdict stays queryable beside the pooled one (issue 24), and `source: artist` pools the run's
tracks of one artist (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.audio import write_tone
from helpers.files import digest, genres_in_file, set_tags
from helpers.library import BeetsLibrary

LOW, HIGH = 200.0, 5000.0


def _track(folder: Path, name: str, freq: float, artist: str, album: str, genre: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    path = write_tone(folder / f"{name}.flac", freq, seconds=4.0)
    return set_tags(path, title=name, artist=artist, album=album, genre=genre)


def _by_title(beets: BeetsLibrary, field: str, *query: str) -> dict[str, str]:
    lines = beets.run("ls", "-f", f"$title\t${field}", *query).stdout.splitlines()
    return dict(line.split("\t") for line in lines)


def _album_genres(beets: BeetsLibrary) -> dict[str, str]:
    lines = beets.run("ls", "-a", "-f", "$album\t$genres").stdout.splitlines()
    return dict(line.split("\t") for line in lines)


def test_each_tracks_own_verdict_is_kept_beside_its_albums_and_shown_with_v(make_library):
    beets = make_library(source="album")
    for i in range(3):
        _track(beets.music / "deep", f"low{i}", LOW, "Ann", "Deep")
    _track(beets.music / "deep", "odd", HIGH, "Ann", "Deep")
    beets.run("import", "-A", "-q", str(beets.music))
    pretend = beets.run("genreclass", "-p")  # pretend shows each track's own verdict under the album's
    assert "  would be Low on 4 tracks (Low 0.75, High 0.25)\n" in pretend.stdout, pretend.stdout
    assert "    Ann - Deep - odd: on its own High 1.00\n" in pretend.stdout
    assert "    Ann - Deep - low0: on its own Low 1.00\n" in pretend.stdout
    quiet = beets.run("genreclass")
    assert "on its own" not in quiet.stdout  # without -v, the album's verdict alone
    # The album's verdict on every track; each track's own beside it, to query and to list.
    assert _by_title(beets, "genres") == dict.fromkeys(["low0", "low1", "low2", "odd"], "Low")
    assert _by_title(beets, "genreclass_confidence")["odd"] == "0.750"
    assert beets.run("ls", "-f", "$title", "genreclass_track_genre:High").stdout.split() == ["odd"]
    own = _by_title(beets, "genreclass_track_confidence")
    assert float(own["odd"]) > 0.99 and own["odd"] == f"{float(own['odd']):.3f}"  # three decimals, as the album's
    verbose = beets.run("-v", "genreclass", "-f")
    assert "    Ann - Deep - odd: on its own High 1.00\n" in verbose.stdout, verbose.stdout


def test_an_uncertain_album_records_its_pooled_confidence_and_keeps_its_genres(make_library):
    beets = make_library(source="album", min_confidence=0.6)
    for i in range(2):
        _track(beets.music / "split", f"low{i}", LOW, "Cy", "Split")
        _track(beets.music / "split", f"high{i}", HIGH, "Cy", "Split")
    beets.run("import", "-A", "-q", str(beets.music))
    before = {p.name: digest(p) for p in (beets.music / "split").iterdir()}
    proc = beets.run("genreclass")
    assert "uncertain: no genre reaches min_confidence 0.6" in proc.stdout, proc.stdout
    # The album's record says how sure the pooled verdict was, as each track's does; no genre is written.
    albums = beets.run("ls", "-a", "-f", "$album\t$genreclass_confidence\t$genres").stdout.splitlines()
    assert albums == ["Split\t0.500\t"], albums
    assert beets.run("ls", "-a", "-f", "$album", "genreclass_confidence:..0.6").stdout.split() == ["Split"]
    assert set(_by_title(beets, "genreclass_confidence").values()) == {"0.500"}
    assert {p.name: digest(p) for p in (beets.music / "split").iterdir()} == before
    # A rerun skips the album as uncertain last time.
    assert "uncertain last time" in beets.run("genreclass", "-p").stdout


def test_a_track_judged_alone_records_its_own_verdict_too(make_library):
    beets = make_library(source="track")
    _track(beets.music, "hi", HIGH, "Bob", "")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    beets.run("genreclass")
    # The same query finds it whatever `source` judged it by.
    assert _by_title(beets, "genreclass_track_genre") == {"hi": "High"}
    assert _by_title(beets, "genreclass_track_confidence") == _by_title(beets, "genreclass_confidence")


@pytest.fixture
def artists(make_library) -> BeetsLibrary:
    """Ann: album Deep (4 low tones), album Bright (2 high), album Own (1 high, tagged Shoegaze by
    its owner) and one low track on the compilation Mix beside Cid's high one; Bob: a high single."""
    beets = make_library(min_confidence=0.5)
    for i in range(4):
        _track(beets.music / "deep", f"deep{i}", LOW, "Ann", "Deep")
    for i in range(2):
        _track(beets.music / "bright", f"bright{i}", HIGH, "Ann", "Bright")
    _track(beets.music / "own", "own0", HIGH, "Ann", "Own", genre="Shoegaze")
    _track(beets.music / "mix", "mix-ann", LOW, "Ann", "Mix")
    _track(beets.music / "mix", "mix-cid", HIGH, "Cid", "Mix")
    beets.run("import", "-A", "-q", str(beets.music))
    single = beets.root / "single"
    _track(single, "bob", HIGH, "Bob", "")
    beets.run("import", "-A", "-s", "-q", str(single))
    assert beets.run("ls", "-a", "-f", "$album $comp", "album:Mix").stdout.strip() == "Mix True"
    return beets


def test_source_artist_pools_an_artists_albums_compilation_tracks_and_singles(artists):
    proc = artists.run("genreclass", "-s", "artist")
    # Ann: 5 low tones (Deep, Mix) and 3 high (Bright, Own) pooled: Low 5/8. Own's track keeps its owner's genre.
    assert "Ann (artist)\n  Low on 7 tracks (Low 0.6" in proc.stdout, proc.stdout  # 0.625, give or take a little
    assert "); 1 track keeps its own genres\n" in proc.stdout
    assert "  and on the albums Bright; Deep\n" in proc.stdout, proc.stdout
    assert "Cid (artist)\n  High on 1 track (High 1.00, Low 0.00)\n" in proc.stdout
    assert "Bob (artist)\n  High on 1 track (High 1.00, Low 0.00)\n" in proc.stdout
    assert "genreclass: 9 tracks classified (by 3 artists), 1 skipped (by 1 artist); 10 tracks decoded in" in (
        proc.stdout
    )
    genres = _by_title(artists, "genres")
    assert {t: genres[t] for t in ("bright0", "bright1", "deep0", "mix-ann")} == dict.fromkeys(
        ("bright0", "bright1", "deep0", "mix-ann"), "Low"
    )
    assert (genres["own0"], genres["mix-cid"], genres["bob"]) == ("Shoegaze", "High", "High")
    assert genres_in_file(artists.music / "bright" / "bright0.flac") == ["Low"]
    # Albums all of whose tracks are Ann's follow her verdict; her owner-tagged album and the
    # compilation she shares with Cid keep theirs.
    assert _album_genres(artists) == {"Bright": "Low", "Deep": "Low", "Own": "Shoegaze", "Mix": ""}
    # Each track's own verdict stays findable: Bright's high tones in a Low artist.
    assert sorted(artists.run("ls", "-f", "$title", "artist:Ann", "genreclass_track_genre:High").stdout.split()) == [
        "bright0",
        "bright1",
    ]
    # Done: a rerun skips every artist, without decoding anything.
    again = artists.run("genreclass", "-s", "artist")
    assert again.stdout.endswith("genreclass: 0 tracks classified, 10 skipped (by 3 artists)\n"), again.stdout


def test_source_artist_judges_only_the_tracks_it_is_given(artists):
    # The query's tracks of Ann only: her other tracks in the library are not pulled in, and no
    # album's field follows a verdict on part of its tracks.
    proc = artists.run("genreclass", "-s", "artist", "album:Bright", ",", "title:deep0")
    assert "Ann (artist)\n  High on 3 tracks (High 0.67, Low 0.33)\n  and on the album Bright\n" in proc.stdout, (
        proc.stdout
    )
    assert _album_genres(artists) == {"Bright": "High", "Deep": "", "Own": "Shoegaze", "Mix": ""}
    assert _by_title(artists, "genres")["deep0"] == "High" and _by_title(artists, "genres")["deep1"] == ""
    # A track with no artist is judged alone.
    artists.run("modify", "-y", "title:bob", "artist=")
    alone = artists.run("genreclass", "-s", "artist", "title:bob")
    assert "(artist)" not in alone.stdout and "genreclass: 1 track classified;" in alone.stdout, alone.stdout


def test_source_artist_on_import_pools_the_tracks_of_every_task(make_library):
    beets = make_library(auto=True, source="artist")
    beets.settings["import"].update(copy=True, write=True)
    for i in range(3):
        _track(beets.music / "deep", f"deep{i}", LOW, "Ann", "Deep")
    for i in range(2):
        _track(beets.music / "bright", f"bright{i}", HIGH, "Ann", "Bright")
    before = {p: digest(p) for p in beets.music.rglob("*.flac")}
    proc = beets.run("import", "-A", "-q", str(beets.music))  # two albums: two import tasks
    assert {p: digest(p) for p in beets.music.rglob("*.flac")} == before  # the originals are untouched
    assert proc.stdout.count("Ann (artist)") == 1
    assert "  Low on 5 tracks (Low 0.60, High 0.40)\n  and on the albums Bright; Deep\n" in proc.stdout, proc.stdout
    assert "genreclass: 5 tracks classified (by 1 artist); 5 tracks decoded in" in proc.stdout
    copies = list(beets.lib_path.rglob("*.flac"))
    assert len(copies) == 5 and all(genres_in_file(p) == ["Low"] for p in copies)
    assert _album_genres(beets) == {"Bright": "Low", "Deep": "Low"}
