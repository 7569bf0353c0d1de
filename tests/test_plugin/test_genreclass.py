"""`beet genreclass` and `beet import` driven for real, in a temporary library, on real files.

Commands run in the test process (`BeetsLibrary.run`); the installed `beet` script runs in a process
of its own where a process is what is tested: the entry point itself, and stopping on a signal.
"""

from __future__ import annotations

import os
import signal

import mutagen
import pytest
from helpers.audio import tone, write_audio, write_tone
from helpers.files import digest, genres_in_file
from helpers.library import BeetsLibrary, only_error
from helpers.markers import needs_ffmpeg


@pytest.fixture
def library(make_library) -> BeetsLibrary:
    beets = make_library()
    for ext in (".mp3", ".flac", ".ogg", ".opus"):
        write_tone(beets.music / f"low{ext}", 200.0, seconds=5.0, channels=2)
        write_tone(beets.music / f"high{ext}", 5000.0, seconds=5.0)
    return beets


def imported(beets: BeetsLibrary) -> BeetsLibrary:
    beets.run("import", "-A", "-q", str(beets.music))
    return beets


def test_import_with_auto_writes_genres_into_files(library):
    library.settings["genreclass"]["auto"] = True
    imported(library)
    for path in library.music.iterdir():
        expected = "Low" if path.name.startswith("low") else "High"
        assert genres_in_file(path) == [expected], path.name
    models = library.field("genreclass_model")
    assert set(models.values()) == {"tiny@1"} and len(models) == 8
    assert all(float(v) > 0.9 for v in library.field("genreclass_confidence").values())


def test_the_installed_beet_script_loads_the_plugin_and_exits_1_on_a_bad_setting(library):
    # The one place the `beet` entry point itself runs these commands; everything else runs them in-process.
    imported(library)
    proc = library.run_process("genreclass")
    assert "\ngenreclass: 8 tracks classified; 8 tracks decoded in " in proc.stdout
    assert proc.stdout.count("  Low (Low 1.00") == proc.stdout.count("  High (High 1.00") == 4
    for path in library.music.iterdir():
        assert genres_in_file(path) == (["Low"] if path.name.startswith("low") else ["High"]), path.name
    assert proc.stderr == ""
    library.settings["genreclass"]["count"] = 0
    bad = library.run_process("genreclass", check=False)
    assert bad.returncode == 1 and bad.stderr == "error: genreclass: 'count' must be at least 1, got 0\n", bad.stderr


def test_pretend_changes_no_byte_and_no_database_entry(library):
    imported(library)
    before = {p.name: digest(p) for p in library.music.iterdir()}
    db_before = digest(library.root / "library.db")
    proc = library.run("genreclass", "--pretend")
    text = proc.stdout + proc.stderr
    assert "Low 1.00" in text and "High 1.00" in text
    assert "pretend: 8 tracks classified" in text
    assert {p.name: digest(p) for p in library.music.iterdir()} == before
    assert digest(library.root / "library.db") == db_before


def test_existing_genres_kept_unless_forced_and_rerun_resumes(library):
    imported(library)
    jazz = library.music / "low.flac"
    library.run("modify", "-y", "-w", f"path:{jazz}", "genres=Jazz")
    assert genres_in_file(jazz) == ["Jazz"]
    proc = library.run("genreclass")
    assert "genreclass: 7 tracks classified, 1 skipped; 7 tracks decoded" in proc.stdout
    assert genres_in_file(jazz) == ["Jazz"]
    assert genres_in_file(library.music / "low.mp3") == ["Low"]
    # A rerun finds every track done by this model (or carrying the user's genre): it resumes.
    again = library.run("genreclass")
    assert "genreclass: 0 tracks classified, 8 skipped\n" in again.stdout
    forced = library.run("genreclass", "-f", f"path:{jazz}")
    assert "genreclass: 1 track classified;" in forced.stdout
    assert genres_in_file(jazz) == ["Low"]


def test_nowrite_stores_in_database_only(library):
    imported(library)
    path = library.music / "high.ogg"
    before = digest(path)
    library.run("genreclass", "-W", f"path:{path}")
    assert digest(path) == before
    assert library.field("genres")["high.ogg"] == "High"


def test_corrupt_file_is_reported_and_the_others_tagged(library):
    imported(library)
    broken = library.music / "high.mp3"
    broken.write_bytes(os.urandom(4000))
    before = digest(broken)
    library.settings["genreclass"]["workers"] = 2
    proc = library.run("genreclass")
    assert f"{broken}: not a readable audio file" in proc.stderr
    assert "genreclass: 7 tracks classified, 1 failed; 8 tracks decoded" in proc.stdout
    assert digest(broken) == before
    assert genres_in_file(library.music / "high.flac") == ["High"]
    assert library.field("genreclass_model")["high.mp3"] in ("", "$genreclass_model")  # no verdict recorded


def test_count_and_min_confidence(library, tmp_path):
    imported(library)
    library.settings["genreclass"].update(count=2, min_confidence=0.0)
    library.run("genreclass", f"path:{library.music / 'low.opus'}")
    assert genres_in_file(library.music / "low.opus") == ["Low", "High"]


def test_help_and_bad_settings(library):
    # Help needs no valid settings (a user with a broken config can still read it); the usage
    # line is put together by hand around optparse's %prog.
    library.settings["genreclass"]["min_confidence"] = 2
    help = library.run("genreclass", "--help")
    assert help.returncode == 0 and help.stdout.startswith("Usage: beet genreclass [options] [QUERY]\n\n")
    assert "'min_confidence' must be between 0 and 1" in only_error(library.run("genreclass", check=False))
    library.settings["genreclass"].update(min_confidence=0.3, model=str(library.root / "nope.onnx"))
    assert "model file not found" in only_error(library.run("genreclass", check=False))


@needs_ffmpeg
def test_m4a_gets_mp4_genre_atom(make_library):
    beets = make_library()
    path = write_audio(beets.music / "low.m4a", tone(200.0, 5.0), 44100)
    imported(beets)
    beets.run("genreclass")
    assert mutagen.File(path).tags["\xa9gen"] == ["Low"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_between_tracks_and_a_rerun_resumes(make_library, signum):
    beets = make_library(max_windows=20)
    n = 60
    for i in range(n):
        write_tone(beets.music / f"t{i:02d}.flac", 200.0 if i % 2 else 5000.0, seconds=20.0)
    imported(beets)
    # Unbuffered: verdict lines reach the pipe as they are printed.
    proc = beets.start_process("genreclass", env={"PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        if line.startswith(("  Low (", "  High (")):
            proc.send_signal(signum)
            break
    proc.stdout.read()
    assert proc.wait(timeout=60) != 0
    assert "interrupted" in proc.stderr.read()
    done = {name for name, model in beets.field("genreclass_model").items() if model == "tiny@1"}
    assert 0 < len(done) < n
    # Each file is either tagged (and recorded in the library) or untouched.
    for path in beets.music.iterdir():
        assert genres_in_file(path) == ((["Low"] if int(path.stem[1:]) % 2 else ["High"]) if path.name in done else [])
    rerun = beets.run("genreclass")
    assert f"{n - len(done)} tracks classified, {len(done)} skipped" in rerun.stdout
