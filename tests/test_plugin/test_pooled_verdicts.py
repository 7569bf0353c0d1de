"""Verdicts pooled over several tracks (an album's) in a real library: each track's own verdict
stays queryable beside the pooled one (issue 24)."""

from __future__ import annotations

from pathlib import Path

from helpers.audio import write_tone
from helpers.files import set_tags
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


def test_a_track_judged_alone_records_its_own_verdict_too(make_library):
    beets = make_library(source="track")
    _track(beets.music, "hi", HIGH, "Bob", "")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    beets.run("genreclass")
    # The same query finds it whatever `source` judged it by.
    assert _by_title(beets, "genreclass_track_genre") == {"hi": "High"}
    assert _by_title(beets, "genreclass_track_confidence") == _by_title(beets, "genreclass_confidence")
