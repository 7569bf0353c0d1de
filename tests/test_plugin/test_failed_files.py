"""A file that cannot be decoded, remembered (issue 24): its album is judged without it, and reruns
neither decode it nor its done album again, nor print its error again, until the file changes or
`--force` asks. Every track is counted once in the summary."""

from __future__ import annotations

from pathlib import Path

from helpers.audio import write_tone
from helpers.files import genres_in_file, set_tags
from helpers.library import BeetsLibrary


def _track(
    folder: Path, name: str, freq: float, seconds: float = 4.0, artist: str = "Ann", album: str = "Deep"
) -> Path:
    folder.mkdir(exist_ok=True)
    return set_tags(write_tone(folder / f"{name}.flac", freq, seconds=seconds), title=name, artist=artist, album=album)


def _field(beets: BeetsLibrary, name: str) -> dict[str, str]:
    return dict(line.split("\t") for line in beets.run("ls", "-f", f"$title\t${name}").stdout.splitlines())


def test_an_album_is_judged_without_its_failed_track_and_not_decoded_again(make_library):
    beets = make_library(source="album")
    album = beets.music / "deep"
    for i in range(3):
        _track(album, f"low{i}", 200.0)
    short = _track(album, "short", 200.0, seconds=0.5)  # beets reads it; the decoder finds it too short
    beets.run("import", "-A", "-q", str(beets.music))

    first = beets.run("genreclass")
    (error,) = first.stderr.splitlines()  # one line: the path and why
    assert f"{short}: too short to classify" in error, first.stderr
    assert "Ann - Deep\n  genres:\n    + Low\n  Low on 3 tracks (Low 1.00, High 0.00); 1 failed\n" in first.stdout
    assert "genreclass: 3 tracks classified (in 1 album), 1 failed (in 1 album); 4 tracks decoded in" in first.stdout
    assert "too short" in _field(beets, "genreclass_failed")["short"]
    assert beets.run("ls", "-a", "-f", "$genres").stdout.strip() == "Low"

    # The rest of the album is done and the file unchanged: nothing is decoded, one short line says so.
    again = beets.run("genreclass")
    assert again.stderr == ""
    assert again.stdout == (
        "Ann - Deep - short: skipped: failed before; unchanged since\n"
        "genreclass: 0 tracks classified, 4 skipped (in 1 album)\n"
    ), again.stdout
    pretend = beets.run("genreclass", "-p")  # with the reason it failed
    assert "Ann - Deep - short\n  skipped: failed before; unchanged since (too short" in pretend.stdout

    # --force tries it again (and fails again, saying so).
    forced = beets.run("genreclass", "-f")
    assert forced.stderr.count("too short") == 1 and "1 failed (in 1 album); 4 tracks decoded" in forced.stdout

    # Repaired (re-ripped at full length): it changed, so it is decoded and joins its album's verdict.
    _track(album, "short", 5000.0, seconds=4.0)
    repaired = beets.run("genreclass")
    assert repaired.stderr == "", repaired.stderr
    assert "genreclass: 1 track classified (in 1 album), 3 unchanged (in 1 album); 4 tracks decoded" in (
        repaired.stdout
    )
    assert genres_in_file(short) == ["Low"]  # the album's verdict (Low 0.75)
    assert _field(beets, "genreclass_failed")["short"] == "$genreclass_failed"  # forgotten: no such field
    assert _field(beets, "genreclass_track_genre")["short"] == "High"  # its own verdict, beside


def test_a_file_that_fails_on_import_is_remembered_as_the_library_holds_it(make_library):
    beets = make_library(auto=True)  # per track
    beets.settings["import"].update(copy=True, write=True)
    _track(beets.music, "good", 200.0)
    _track(beets.music, "short", 200.0, seconds=0.5)
    imported = beets.run("import", "-A", "-s", "-q", str(beets.music))
    assert imported.stderr.count("too short") == 1
    assert "genreclass: 1 track classified, 1 failed; 2 tracks decoded in" in imported.stdout
    # The library's copy is a new file (its own mtime); it is what reruns compare with.
    again = beets.run("genreclass")
    assert "too short" not in again.stderr
    assert "short: skipped: failed before; unchanged since" in again.stdout
    assert again.stdout.endswith("genreclass: 0 tracks classified, 2 skipped\n"), again.stdout


def test_the_import_summary_counts_every_track_once(make_library):
    """An album with a failed track, a compilation and a single in one import: each file counted
    once, the albums' tracks apart from those judged alone."""
    beets = make_library(auto=True, source="album")
    for i in range(2):
        _track(beets.music / "deep", f"low{i}", 200.0)
    _track(beets.music / "deep", "short", 200.0, seconds=0.5)
    _track(beets.music / "mix", "mix-ann", 200.0, artist="Ann", album="Mix")
    _track(beets.music / "mix", "mix-cid", 5000.0, artist="Cid", album="Mix")
    proc = beets.run("import", "-A", "-q", str(beets.music))
    assert (
        "genreclass: 4 tracks classified (2 in 1 album, 2 alone), 1 failed (in 1 album); 5 tracks decoded in"
        in proc.stdout
    )
    assert "Low on 2 tracks (Low 1.00, High 0.00); 1 failed\n" in proc.stdout, proc.stdout
