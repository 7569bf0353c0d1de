"""The run's summary line: every track counted once, by outcome and by how it was judged, in words
that say what each number counts (issue 24)."""

from __future__ import annotations

import pytest

from beetsplug.genreclass.summary import RunSummary, plural


def test_tracks_alone_read_as_tracks_and_plurals_are_right():
    summary = RunSummary()
    assert summary.line() == "0 tracks classified"
    summary.add("classified")
    assert summary.line() == "1 track classified"
    summary.add("classified", n=2)
    summary.add("failed")
    summary.decoded, summary.seconds = 4, 2.0
    assert summary.line() == "3 tracks classified, 1 failed; 4 tracks decoded in 2.0 s (2.0 tracks/s)"
    assert (plural(1, "album"), plural(0, "album"), plural(2, "artist")) == ("1 album", "0 albums", "2 artists")


def test_tracks_in_albums_and_alone_are_told_apart_and_each_album_counted_once():
    summary = RunSummary()
    for album in range(6):  # 31 tracks in 6 albums, some albums in two runs (an import's tasks)
        summary.add("classified", "album", ("album", album), n=4 if album else 3)
        summary.add("classified", "album", ("album", album), n=1 if album else 3)
    summary.add("classified", n=6)
    summary.add("uncertain", "album", ("album", 9), n=2)
    summary.add("failed", "album", ("album", 0))
    summary.add("skipped", n=3)
    summary.add("unchanged", n=0)  # nothing to say: not said
    assert summary.line() == (
        "37 tracks classified (31 in 6 albums, 6 alone), 2 uncertain (in 1 album), 3 skipped, 1 failed (in 1 album)"
    )


def test_an_artists_tracks_are_counted_by_artist():
    summary = RunSummary()
    summary.add("classified", "artist", ("artist", "ann"), n=7)
    summary.add("classified", "artist", ("artist", "bob"))
    summary.add("skipped", "artist", ("artist", "ann"))
    summary.add("classified")
    assert summary.line() == "9 tracks classified (8 by 2 artists, 1 alone), 1 skipped (by 1 artist)"


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome 'done'"):
        RunSummary().add("done")
