"""Bad files, unwritable files and broken models in a real library: each fails alone, nothing is lost."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers.audio import tone, write_audio, write_damaged_mp3, write_tone
from helpers.files import all_tags, digest, genres_in_file, set_tags
from helpers.library import only_error
from helpers.markers import needs_ffmpeg
from helpers.models import build_tiny_model
from mutagen.id3 import COMM, ID3, TALB, TDRC, TIT2, TPE1, TRCK, TXXX

GENRE_KEYS = {"TCON", "genre", "GENRE", "\xa9gen"}


def rich_tags(path: Path) -> Path:
    """Tags a curated file has: title, artist, album, track, date, comment, a custom field."""
    if path.suffix == ".mp3":
        tags = ID3()
        for frame in (TIT2(encoding=3, text="Title ü"), TPE1(encoding=3, text="Artist"), TALB(encoding=3, text="Album"),
                      TRCK(encoding=3, text="3/12"), TDRC(encoding=3, text="1999"),
                      COMM(encoding=3, lang="eng", desc="", text="my notes"),
                      TXXX(encoding=3, desc="MY_FIELD", text="keep me")):  # fmt: skip
            tags.add(frame)
        tags.save(path)
    else:
        set_tags(path, title="Title ü", artist="Artist", album="Album", tracknumber="3", date="1999",
                 comment="my notes", my_field="keep me")  # fmt: skip
    return path


def build_corpus(music: Path) -> tuple[dict[str, str], list[str]]:
    """Good files ({name: expected genre}) and the names of files that will be damaged after import."""
    good = {
        "rich.mp3": "Low", "rich.flac": "High", "rich.ogg": "Low", "wide 96k 8ch.wav": "Low",
        "narrow 8k.flac": "Low", "naïve café 日本語.ogg": "High",
    }  # fmt: skip
    for name, genre in good.items():
        freq = 200.0 if genre == "Low" else 5000.0
        if name.startswith("wide"):
            write_audio(music / name, tone(freq, 4.0, sr=96000, channels=8), 96000)
        elif name.startswith("narrow"):
            write_tone(music / name, freq, seconds=4.0, sr=8000)
        else:
            rich_tags(write_tone(music / name, freq, seconds=6.0, channels=2))
    bad = ["zero.mp3", "random.mp3", "cut.mp3", "cut.flac", "no frames.wav", "half second.flac", "silence.flac",
           "deleted.flac"]  # fmt: skip
    for name in bad:
        write_tone(music / name, 200.0, seconds=0.5 if name.startswith("half") else 12.0)
    write_audio(music / "silence.flac", np.zeros((44100 * 5, 1), np.float32))
    return good, bad


def damage(music: Path) -> None:
    """What years on a disk do to files already in the library."""
    (music / "zero.mp3").write_bytes(b"")
    (music / "random.mp3").write_bytes(np.random.default_rng(0).bytes(20000))
    for name in ("cut.mp3", "cut.flac"):
        data = (music / name).read_bytes()
        (music / name).write_bytes(data[: len(data) // 3])
    write_audio(music / "no frames.wav", np.zeros((0, 1), np.float32))
    (music / "deleted.flac").unlink()


def test_bad_files_fail_alone_and_good_files_change_only_their_genre(make_library):
    beets = make_library(workers=2)
    good, bad = build_corpus(beets.music)
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    damage(beets.music)
    before = {p.name: (digest(p), all_tags(p)) for p in beets.music.iterdir()}

    proc = beets.run("genreclass")  # per-file failures are reported, not fatal: exit status 0
    lines = proc.stderr.splitlines()
    assert f"{len(good)} tracks classified, {len(bad)} failed; {len(good) + len(bad)} tracks decoded" in proc.stdout
    assert "Traceback" not in proc.stderr and "Illegal Audio-MPEG-Header" not in proc.stderr
    reasons = {
        "zero.mp3": "empty", "random.mp3": "not a readable audio file", "cut.mp3": "truncated",
        "cut.flac": "truncated", "no frames.wav": "", "half second.flac": "too short",
        "silence.flac": "silence", "deleted.flac": "No such file",
    }  # fmt: skip
    for name in bad:
        mentions = [line for line in lines if name in line]
        assert len(mentions) == 1, (name, mentions)  # one clear line: path and reason
        assert str(beets.music / name) in mentions[0] and reasons[name] in mentions[0], mentions[0]
    for name in bad:
        if name in before:
            assert digest(beets.music / name) == before[name][0], f"{name} was modified"
    for name, genre in good.items():
        path = beets.music / name
        assert genres_in_file(path) == [genre], name
        after = all_tags(path)
        kept = {k: v for k, v in before[name][1].items() if k not in GENRE_KEYS}
        assert {k: v for k, v in after.items() if k not in GENRE_KEYS} == kept, name
    # The library entry of the deleted file is still there, unclassified: a rerun retries it.
    assert beets.field("genreclass_model").get("deleted.flac") in ("", "$genreclass_model")


@needs_ffmpeg
@pytest.mark.parametrize("workers", [0, 2], ids=["in beets", "decoder processes"])
def test_a_damaged_mp3_is_reported_in_words_and_the_codec_stays_quiet(make_library, capfd, workers):
    beets = make_library(workers=workers)
    write_damaged_mp3(beets.music / "damaged.mp3")
    write_tone(beets.music / "good.flac", 200.0, seconds=5.0)
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    capfd.readouterr()
    proc = beets.run("-v", "genreclass")
    assert "1 track classified, 1 failed;" in proc.stdout, proc.stdout
    path = beets.music / "damaged.mp3"
    error = f"genreclass: {path}: truncated or damaged: libsndfile could not decode the MP3 data"
    assert error in proc.stderr.splitlines()
    # libsndfile's own words and libmpg123's are in the debug log (-v), after the error in words.
    assert f"genreclass: {path}: libsndfile: Unspecified internal error.; codec: " in proc.stderr
    # Nothing reached file descriptor 2 past beets' log: libmpg123 writes there itself.
    assert capfd.readouterr().err == ""


def _make_unwritable(path: Path) -> None:
    """Read-only for everyone: mode 0444, and for root (which ignores modes) the immutable flag."""
    path.chmod(0o444)
    if os.geteuid() == 0:
        proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"running as root and chattr +i is unavailable here: {proc.stderr.strip()}")


def test_unwritable_files_fail_unchanged_and_the_rest_are_tagged(make_library):
    beets = make_library()
    names = ("read-only.flac", "locked.mp3", "writable.ogg")
    for name in names:
        write_tone(beets.music / name, 200.0, seconds=5.0)
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    unwritable = [beets.music / "read-only.flac", beets.music / "locked.mp3"]
    try:
        for path in unwritable:
            _make_unwritable(path)
        before = {p.name: digest(p) for p in unwritable}
        proc = beets.run("genreclass")
    finally:
        for path in unwritable:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(path)], capture_output=True)
            path.chmod(0o644)
    assert "genreclass: 1 track classified, 2 failed; 3 tracks decoded" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
    for path in unwritable:
        assert digest(path) == before[path.name]
        mentions = [line for line in proc.stderr.splitlines() if path.name in line]
        assert len(mentions) == 1 and "cannot write tags" in mentions[0], mentions
    assert genres_in_file(beets.music / "writable.ogg") == ["Low"]
    models = beets.field("genreclass_model")
    assert models["writable.ogg"] == "tiny@1"
    assert models["read-only.flac"] in ("", "$genreclass_model")  # not recorded: a rerun retries it
    assert (
        "2 tracks classified, 1 skipped" in beets.run("genreclass").stdout
    )  # once writable again, the rerun tags them


@pytest.mark.parametrize("problem", ["missing", "corrupt", "no metadata", "bad json", "label mismatch"])
def test_model_problems_stop_before_any_file_is_touched(tmp_path, make_library, problem):
    model = tmp_path / "model.onnx"
    if problem == "corrupt":
        model.write_bytes(b"\x08\x07 not an onnx file")
    elif problem == "no metadata":
        proto = onnx.load(str(build_tiny_model(model)))
        del proto.metadata_props[:]
        onnx.save(proto, str(model))
    elif problem == "bad json":
        build_tiny_model(model, metadata="{not json")
    elif problem == "label mismatch":
        build_tiny_model(model, n_outputs=3)
    (tmp_path / "lib").mkdir()
    beets = make_library(tmp_path / "lib", model)
    write_tone(beets.music / "a.flac", 200.0, seconds=5.0)
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    before = (digest(beets.music / "a.flac"), digest(beets.root / "library.db"))
    assert str(model) in only_error(beets.run("genreclass", check=False))
    assert (digest(beets.music / "a.flac"), digest(beets.root / "library.db")) == before
