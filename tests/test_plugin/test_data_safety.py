"""Nothing of the user's is lost: kills and Ctrl-C in the middle of a tag write, two runs at
once, a full disk, a locked or full database, and genres corrected by hand.

Timing is the point of several of these, so a harness stops a real `beet` process at a chosen
moment: a function on the write path is patched in that process to do part of its work and
then SIGKILL or SIGINT the process.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile
from helpers.audio import write_tone
from helpers.files import digest, genres_in_file, set_tags
from helpers.library import BeetsLibrary, only_error
from helpers.models import build_tiny_model
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TIT2, TPE1

from beetsplug.genreclass import tags
from genre_model.provenance import learnable


def unpadded(path: Path) -> Path:
    """Give the file a title and artist and no padding, so any new genre moves its audio in place."""
    if path.suffix == ".mp3":
        tag = ID3()
        tag.add(TIT2(encoding=3, text="A title"))
        tag.add(TPE1(encoding=3, text="An artist"))
        tag.save(path, padding=lambda info: 0)
    else:
        f = FLAC(path)
        f.update({"title": "A title", "artist": "An artist"})
        f.save(padding=lambda info: 0)
    return path


def decoded(path: Path) -> np.ndarray:
    return soundfile.read(path, dtype="int16")[0]


@pytest.fixture
def library(make_library) -> BeetsLibrary:
    """Two unpadded files (FLAC, MP3) of several seconds, imported in place."""
    beets = make_library()
    unpadded(write_tone(beets.music / "low.flac", 200.0, seconds=20.0, channels=2))
    unpadded(write_tone(beets.music / "high.mp3", 5000.0, seconds=20.0, channels=2))
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    return beets


def files(beets: BeetsLibrary) -> list[Path]:
    """The music files (not a hidden copy a killed run left beside one)."""
    return sorted(p for p in beets.music.iterdir() if not p.name.startswith("."))


# Patched into a `beet` process: the function `name` of `module` does part of its job on its
# `when`-th call, then the process gets `signal` (twice for SIGINT: a user's second Ctrl-C).
INTERRUPT = """
import importlib, os, signal
module = importlib.import_module({module!r})
real = getattr(module, {name!r})
calls = [0]
def interrupt():
    for _ in range({repeat}):
        os.kill(os.getpid(), signal.{signal})
def interrupted(*args, **kwargs):
    calls[0] += 1
    if calls[0] != {when}:
        return real(*args, **kwargs)
    if {name!r} == "move_bytes":  # mutagen shifting audio in place: half of it, the signal, the rest
        fobj, dest, src, count = args[:4]
        half = count // 2
        parts = [(dest + half, src + half, count - half), (dest, src, half)]  # overlapping: the far end first
        for i, part in enumerate(parts if dest > src else parts[::-1]):
            real(fobj, *part)
            if i == 0:
                interrupt()
        return None
    if {name!r} == "copyfileobj":  # copying a file: half of it, the signal, then the rest
        src, dst = args[:2]
        dst.write(src.read(os.fstat(src.fileno()).st_size // 2))
        dst.flush()
    interrupt()
    return real(*args, **kwargs)
setattr(module, {name!r}, interrupted)
"""

# Where a write can be cut: mutagen moving a FLAC's audio (the in-place path, and now the new
# copy), copying an MP3 beside itself, and just before the rename that puts a copy in place.
CUT_POINTS = {
    "moving audio": ("mutagen._util", "move_bytes"),
    "copying": ("shutil", "copyfileobj"),
    "renaming": ("os", "replace"),
}


@pytest.mark.slow
@pytest.mark.parametrize("cut", CUT_POINTS)
@pytest.mark.parametrize("signal", ["SIGKILL", "SIGINT"])
def test_a_kill_or_ctrl_c_during_a_write_leaves_each_file_old_or_new_never_damaged(library, cut, signal):
    before = {p.name: (digest(p), decoded(p)) for p in files(library)}
    module, name = CUT_POINTS[cut]
    setup = INTERRUPT.format(module=module, name=name, when=1, signal=signal, repeat=1 if signal == "SIGKILL" else 2)
    first = library.run_process("genreclass", "-w", setup=setup, check=False)
    assert first.returncode != 0 and "Traceback" not in first.stderr, first.stderr
    for path in files(library):
        old_digest, old_audio = before[path.name]
        assert digest(path) == old_digest or (np.array_equal(decoded(path), old_audio) and genres_in_file(path)), (
            f"{path.name} is neither its old bytes nor a good new file after {signal} while {cut}"
        )
    # A rerun finishes the job, leaves no temporary copy behind, and every file still has its audio.
    rerun = library.run("genreclass", "-w")
    summary = rerun.stdout.splitlines()[-1]
    assert summary.startswith("genreclass: ") and "failed" not in summary, rerun.stdout + rerun.stderr
    assert sorted(p.name for p in library.music.iterdir()) == sorted(before)
    for path in files(library):
        assert np.array_equal(decoded(path), before[path.name][1])
        assert genres_in_file(path) == [library.field("genres")[path.name]]
        assert mutagen.File(path).tags is not None and "A title" in str(mutagen.File(path).tags)


STALL_SAVES = """
import time
import beetsplug.genreclass.tags as tags
real = tags.save
def slow(*args, **kwargs):
    time.sleep(0.4)
    return real(*args, **kwargs)
tags.save = slow
"""


@pytest.mark.slow
def test_a_second_run_stops_with_one_line_while_another_writes(library):
    more = [write_tone(library.music / f"more{i}.flac", 300.0, 3.0) for i in range(6)]
    library.run("import", "-A", "-s", "-q", *map(str, more))
    before = {p.name: digest(p) for p in files(library)}
    first = library.start_process("genreclass", "-w", setup=STALL_SAVES)
    lock = Path(library.settings["library"] + ".genreclass-lock")
    deadline = time.monotonic() + 60
    while not (lock.exists() and "pid" in lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        second = library.run("genreclass", "-w", "-f", check=False)
        library.settings["genreclass"]["auto"] = True
        write_tone(library.music / "new.flac", 200.0, 3.0)
        new_before = digest(library.music / "new.flac")
        importing = library.run("import", "-A", "-s", "-q", str(library.music / "new.flac"), check=False)
    finally:
        stdout, stderr = first.communicate(timeout=120)
    for result in (second, importing):
        error = only_error(result)
        assert "another genreclass run is writing to this library" in error
        assert f"pid {first.pid}" in error and "genreclass -w" in error
    assert digest(library.music / "new.flac") == new_before
    assert first.returncode == 0 and "8 tracks classified;" in stdout, stdout + stderr
    assert all(genres_in_file(p) for p in files(library) if p.name in before)
    assert library.run("genreclass", "-w").returncode == 0  # the lock went with the first run


@contextlib.contextmanager
def tiny_disk(root: Path, size_kb: int):
    """A tmpfs of `size_kb` at `root` (root only; skips elsewhere)."""
    root.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(root)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({proc.stderr.decode().strip()})")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def fill(disk: Path, leave_bytes: int) -> None:
    """Fill `disk` until `leave_bytes` are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "ab") as f:
        f.write(bytes(max(0, free - leave_bytes)))


@pytest.mark.slow
def test_a_full_disk_fails_files_unchanged_and_a_full_database_stops_with_one_line(tmp_path, make_library):
    with tiny_disk(tmp_path / "disk", 8192) as disk:
        beets = make_library(disk)
        for i in range(4):
            unpadded(write_tone(beets.music / f"{i}.mp3", 200.0, seconds=6.0))
            unpadded(write_tone(beets.music / f"{i}.flac", 5000.0, seconds=6.0))
        v1 = b"TAG" + bytes(124) + b"\xff"
        with open(beets.music / "0.mp3", "ab") as f:
            f.write(v1)
        beets.run("import", "-A", "-s", "-q", str(beets.music))
        before = {p.name: digest(p) for p in files(beets)}
        rows = beets.field("genres")
        fill(disk, 4096)
        result = beets.run("genreclass", "-w", check=False)
        assert "Traceback" not in result.stderr
        for path in files(beets):
            if path.name != "filler":
                assert digest(path) == before[path.name], f"{path.name} changed on a full disk"
                assert genres_in_file(path) == []
        failed = [line for line in result.stderr.splitlines() if "cannot write tags" in line]
        assert len(failed) == 8 and all("No space left on device" in line for line in failed), result.stderr
        assert "8 failed" in result.stdout
        assert beets.field("genres") == rows  # file and database agree: neither changed
        assert not [p for p in beets.music.iterdir() if "genreclass-tmp" in p.name]
        # The database itself on a full disk: one line, and the files it describes untouched.
        fill(disk, 0)
        error = only_error(beets.run("genreclass", "-W", check=False))
        assert "library database" in error and "full" in error
        assert all(digest(p) == before[p.name] for p in files(beets) if p.name != "filler")


def hold_database(path: str, started: threading.Event, release: threading.Event, at_most_s: float) -> None:
    """Another program writing the library: a write transaction held until `release` is set,
    or for `at_most_s` seconds."""
    db = sqlite3.connect(path, timeout=30)
    db.execute("BEGIN IMMEDIATE")
    started.set()
    release.wait(at_most_s)
    db.rollback()
    db.close()


@pytest.mark.parametrize("held_s", [0.8, None], ids=["briefly", "too long"])
def test_a_locked_database_is_waited_for_then_stops_with_one_line(library, monkeypatch, held_s):
    # Patience 1.5 s on top of sqlite's own 0.2 s: a lock held 0.8 s (longer than sqlite waits)
    # is waited out; one held until the command has given up is not.
    library.settings["timeout"] = 0.2  # beets' own sqlite wait, short to keep the test quick
    monkeypatch.setattr(tags, "LOCKED_DB_PATIENCE_S", 1.5)
    started, release = threading.Event(), threading.Event()
    real_save = tags.save
    holder: list[threading.Thread] = []

    def save_locking_after_the_first(item, write):
        result = real_save(item, write)
        if not holder:  # the first track is saved; then another program takes the database
            args = (library.settings["library"], started, release, held_s or 60.0)
            holder.append(threading.Thread(target=hold_database, args=args))
            holder[0].start()
            started.wait()
        return result

    monkeypatch.setattr(tags, "save", save_locking_after_the_first)
    before = {p.name: digest(p) for p in files(library)}
    result = library.run("genreclass", "-w", check=False)
    release.set()
    holder[0].join()
    if held_s:
        assert result.returncode == 0 and "2 tracks classified" in result.stdout, result.stdout + result.stderr
    else:
        assert "database is locked" in only_error(result)
    # Finished tracks are consistent: the file has a genre exactly when its row does.
    rows = library.field("genres")
    for path in files(library):
        assert genres_in_file(path) == ([rows[path.name]] if rows[path.name] else []), (path, rows, result)
        assert (digest(path) == before[path.name]) == (not rows[path.name])


def test_genres_corrected_by_hand_are_kept_shown_and_learnt_from(tmp_path, make_library):
    beets = make_library(source="album")
    album = beets.music / "album"
    album.mkdir()
    for i in range(3):
        path = write_tone(album / f"{i}.flac", 200.0, seconds=5.0)
        set_tags(path, album="Deep", albumartist="Ann", artist="Ann", title=f"T{i}", tracknumber=str(i + 1))
    beets.run("import", "-A", "-q", str(album))
    beets.run("genreclass", "-f", "-w")
    assert set(beets.field("genres").values()) == {"Low"}
    beets.run("modify", "-y", "-w", "title:T1", "genres=Rap")  # the user's correction, in the file too
    # A new model is installed; a plain run must not undo the correction, and says so.
    newer = build_tiny_model(tmp_path / "newer.onnx", labels=("Deep", "Bright"), version="2")
    beets.settings["genreclass"]["model"] = str(newer)
    result = beets.run("genreclass", "-w")
    assert "Deep on 2 tracks (Deep 1.00, Bright 0.00); 1 track keeps its own genres" in result.stdout, result.stdout
    kept = [line for line in result.stdout.splitlines() if "keeps Rap" in line]
    assert len(kept) == 1 and "changed by hand" in kept[0] and "genreclass wrote Low" in kept[0], result.stdout
    assert beets.field("genres") == {"0.flac": "Deep", "1.flac": "Rap", "2.flac": "Deep"}
    assert genres_in_file(album / "1.flac") == ["Rap"]
    # Another model whose verdict `map` drops: the label goes only where genreclass wrote it.
    newest = build_tiny_model(tmp_path / "newest.onnx", labels=("Deep", "Bright"), version="3")
    beets.settings["genreclass"].update({"model": str(newest), "map": {"Deep": None}, "min_confidence": 0.0})
    beets.run("genreclass", "-w")
    assert beets.field("genres") == {"0.flac": "Bright", "1.flac": "Rap", "2.flac": "Bright"}
    beets.run("genreclass", "-w", "-f")
    assert beets.field("genres")["1.flac"] == "Bright"  # forced: the user's genre gives way
    assert genres_in_file(album / "1.flac") == ["Bright"]
    # Retraining learns from a correction, never from genreclass's own verdicts.
    beets.run("modify", "-y", "title:T2", "genres=Rap")
    from training.data.tracks import load_beets

    tracks, left_out = load_beets(beets.lib)
    assert [Path(t.path).name for t in tracks] == ["2.flac"] and left_out["genres set by genreclass"] == 2
    assert not learnable({"genres": ["Deep"], "genreclass_model": "tiny@1"})  # from before the record existed


def test_a_corrected_single_track_is_named_and_an_uncertain_verdict_is_not_retried(tmp_path, make_library):
    beets = make_library()
    write_tone(beets.music / "a.flac", 200.0, seconds=5.0)
    write_tone(beets.music / "b.flac", 1500.0, seconds=5.0)  # the tiny models' 0.9998, not 1.0
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    beets.run("genreclass", "-w")
    beets.run("modify", "-y", "-w", "path::a.flac", "genres=Rap")
    # A newer model that is sure of nothing: genreclass's own genres stay, and reruns skip it.
    unsure = build_tiny_model(tmp_path / "unsure.onnx", labels=("Deep", "Bright"), version="2")
    beets.settings["genreclass"].update({"model": str(unsure), "min_confidence": 0.9999})
    first = beets.run("genreclass", "-w")
    kept = [line for line in first.stdout.splitlines() if "keeps Rap" in line]
    assert len(kept) == 1 and "changed by hand (Rap; genreclass wrote Low)" in kept[0], first.stdout
    assert "1 uncertain" in first.stdout
    again = beets.run("genreclass", "-w")
    assert "genreclass: 0 tracks classified, 2 skipped\n" in again.stdout, again.stdout  # b: uncertain last time
    assert beets.field("genres") == {"a.flac": "Rap", "b.flac": "Low"}
    assert beets.field("genreclass_model")["b.flac"] == "tiny@2"
