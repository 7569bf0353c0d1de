"""Everyday use as a beets user meets it: real `beet import` with beets' default copy and write,
settings checked before anything is touched, results on stdout, reruns that skip what is done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from helpers.audio import heard_genre, white_noise, write_audio, write_tone
from helpers.files import digest, genres_in_file, set_tags
from helpers.library import REPO, BeetsLibrary, only_error


@pytest.fixture
def music(make_library) -> BeetsLibrary:
    """Four untagged files (two low tones, two high) in a library that copies and writes on import."""
    beets = make_library(auto=True)
    beets.settings["import"].update(copy=True, write=True)
    for ext in (".mp3", ".flac"):
        write_tone(beets.music / f"low{ext}", 200.0, seconds=5.0)
        write_tone(beets.music / f"high{ext}", 5000.0, seconds=5.0)
    return beets


def _library_files(beets: BeetsLibrary) -> dict[str, Path]:
    """The library's copies, whose names beets makes from their (empty) tags, not the originals'."""
    return {p.name: p for p in beets.lib_path.rglob("*") if p.is_file()}


def _expected(name: str) -> list[str]:
    return ["Low"] if "low" in name else ["High"]


@pytest.mark.parametrize("singletons", [False, True], ids=["album", "singletons"])
def test_import_with_copy_and_write_leaves_the_originals_byte_identical(music, singletons):
    before = {p.name: digest(p) for p in music.music.iterdir()}
    proc = music.run("import", "-A", "-q", *(["-s"] if singletons else []), str(music.music))
    assert {p.name: digest(p) for p in music.music.iterdir()} == before
    assert all(genres_in_file(p) == [] for p in music.music.iterdir())
    # The copies carry the genre, and the library knows which model put it there.
    genres = music.field("genres")
    copies = _library_files(music)
    assert len(copies) == 4
    for path in copies.values():
        assert genres_in_file(path) == genres[path.name].split(", ") == [heard_genre(path)], path.name
    assert set(music.field("genreclass_model").values()) == {"tiny@1"}
    # A normal-verbosity import shows genreclass's results and summary on stdout.
    assert "genreclass: 4 tracks classified; 4 tracks decoded in" in proc.stdout
    assert proc.stdout.count("  Low (Low 1.00") == 2


def test_import_with_move_writes_the_moved_files(music):
    music.settings["import"].update(copy=False, move=True)
    music.run("import", "-A", "-q", str(music.music))
    assert list(music.music.iterdir()) == []
    files = _library_files(music)
    assert len(files) == 4
    assert sorted(genres_in_file(p)[0] for p in files.values()) == ["High", "High", "Low", "Low"]
    assert all(genres_in_file(p) == [heard_genre(p)] for p in files.values())


def test_in_place_library_writes_originals_only_when_import_write_says_so(music):
    music.settings["import"].update(copy=False, write=False)
    before = {p.name: digest(p) for p in music.music.iterdir()}
    music.run("import", "-A", "-q", str(music.music))
    assert {p.name: digest(p) for p in music.music.iterdir()} == before
    assert set(music.field("genres").values()) == {"Low", "High"}  # in the database only
    # With write: yes and no copy, the library's file is the original: written as asked.
    music.settings["import"]["write"] = True
    music.run("genreclass", "-f")
    assert all(genres_in_file(p) == _expected(p.name) for p in music.music.iterdir())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("min_confidence", 2, "'min_confidence' must be between 0 and 1"),
        ("device", "gpu", "'device' must be one of"),
        ("workers", "many", "'workers' must be 'auto' or a number >= 0"),
        ("count", 0, "'count' must be at least 1"),
        ("vote", "loudest", "'vote' must be one of"),
        ("max_windows", "eight", "'max_windows' must be a number"),
        ("auto", "sometimes", "'auto' must be a bool"),
    ],
)
def test_a_bad_setting_stops_the_import_before_anything_is_touched(music, key, value, message):
    music.settings["genreclass"][key] = value
    before = {p.name: digest(p) for p in music.music.iterdir()}
    error = only_error(music.run("import", "-A", "-q", str(music.music), check=False))
    assert message in error
    assert error.startswith("genreclass: '") and "genreclass." not in error  # one prefix
    assert music.run("ls").stdout == ""  # no database entry
    assert not music.lib_path.exists()  # no copy
    assert {p.name: digest(p) for p in music.music.iterdir()} == before


def test_results_go_to_stdout_and_an_empty_query_says_so(music):
    music.settings["genreclass"]["auto"] = False
    music.run("import", "-A", "-q", str(music.music))
    proc = music.run("genreclass", "--pretend")
    assert "would be Low (Low 1.00" in proc.stdout and "pretend: 4 tracks classified" in proc.stdout
    assert proc.stderr == ""
    proc = music.run("genreclass", "title:nothing-has-this-title")
    assert proc.stdout.strip() == "genreclass: no tracks match 'title:nothing-has-this-title'"


def test_forced_pretend_says_which_verdicts_the_tags_already_hold(music):
    # After a real run the tags say the verdict; a forced pretend says they would stay, not "would be".
    music.settings["genreclass"]["auto"] = False
    music.settings["genreclass"]["source"] = "track"
    music.run("import", "-A", "-q", str(music.music))
    music.run("genreclass", "format:FLAC")
    proc = music.run("genreclass", "--pretend", "--force")
    for genre in ("Low", "High"):  # the FLAC file's tags hold it, the MP3's not yet
        assert proc.stdout.count(f"would stay {genre} (") == 1 and proc.stdout.count(f"would be {genre} (") == 1
    assert "pretend: 2 tracks classified, 2 unchanged" in proc.stdout, proc.stdout


def test_an_uncertain_track_is_recorded_and_skipped_until_the_threshold_drops(make_library):
    beets = make_library(min_confidence=0.9)
    rng = np.random.default_rng(0)
    for name in ("noise1.flac", "noise2.mp3"):  # white noise: Low and High about equally likely
        write_audio(beets.music / name, white_noise(5.0, 44100, rng))
    beets.run("import", "-A", "-q", str(beets.music))
    first = beets.run("genreclass")
    assert "2 uncertain" in first.stdout and "no genre reaches min_confidence 0.9" in first.stdout
    assert set(beets.field("genreclass_model").values()) == {"tiny@1"}
    assert set(beets.field("genres").values()) == {""}  # genres untouched
    # Shown with three decimals, so the threshold comparison can be read off `beet ls`.
    confidences = list(beets.field("genreclass_confidence").values())
    assert all(len(c.split(".")[1]) == 3 and 0.5 <= float(c) < 0.9 for c in confidences), confidences
    rerun = beets.run("genreclass", "--pretend")
    assert "2 skipped" in rerun.stdout and "skipped: uncertain last time" in rerun.stdout
    beets.settings["genreclass"]["min_confidence"] = 0.5
    lowered = beets.run("genreclass")
    assert "2 tracks classified" in lowered.stdout


def test_import_pool_is_made_once_for_many_tasks(music):
    music.settings["genreclass"]["workers"] = 2
    proc = music.run("-vv", "import", "-A", "-s", "-q", str(music.music))
    assert proc.stderr.count("starting 2 decoder processes") == 1, proc.stderr
    assert list(music.field("genreclass_model").values()) == ["tiny@1"] * 4  # every track classified


def test_a_folder_as_model_says_it_is_a_folder(music, tmp_path):
    music.settings["genreclass"]["model"] = str(tmp_path)
    assert "is a folder" in only_error(music.run("genreclass", check=False))


def test_run_sh_rejects_unknown_arguments(tmp_path):
    for args in (["--frobnicate"], [str(tmp_path), "--wrte"], [str(tmp_path), "--write", "extra"]):
        proc = subprocess.run([str(REPO / "run.sh"), *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "usage: ./run.sh" in proc.stderr, (args, proc.stderr)


def _venv_borrowing_dependencies(path: Path) -> Path:
    """A new virtual environment that sees the test environment's packages (a .pth file) but
    not its editable install of this checkout: run.sh installs this checkout into it for real,
    without downloading anything, and the test environment is left as it was."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = subprocess.run(
        [str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # beets comes through the .pth file; its `beet` script, which run.sh calls, is written here.
    beet = path / "bin" / "beet"
    beet.write_text(
        f"#!{path / 'bin' / 'python'}\nimport sys\nfrom beets.ui import main\n\n"
        "if __name__ == '__main__':  # decoder processes import this module again\n    sys.exit(main())\n"
    )
    beet.chmod(0o755)
    return path


def _copy_of_checkout(dest: Path) -> Path:
    """What run.sh installs (its own folder), copied: pip builds in the source tree (build/,
    *.egg-info), and a test must leave this checkout as it found it."""
    dest.mkdir()
    for name in ("run.sh", "setup.cfg", "pyproject.toml", "README.md", "beetsplug", "genre_model", "training"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.mark.slow
def test_run_sh_installs_this_checkout_names_each_skipped_track_and_forces(tmp_path, tiny_model):
    music = tmp_path / "music"
    music.mkdir()
    write_tone(music / "low.flac", 200.0, seconds=5.0)
    set_tags(write_tone(music / "tagged.flac", 5000.0, seconds=5.0), genre="Jazz")
    (music / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(20000))  # beets drops it without a word
    env = {
        **os.environ,
        "GENRECLASS_VENV": str(_venv_borrowing_dependencies(tmp_path / "venv")),
        # run.sh's throw-away beets folder (mktemp) and pip's temporary and cached files, here.
        "TMPDIR": str(tmp_path),
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
    }
    run_sh = [str(_copy_of_checkout(tmp_path / "checkout") / "run.sh"), str(music), "--model", str(tiny_model)]
    proc = subprocess.run(run_sh, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: already has genres (Jazz)" in proc.stdout and "would be Low" in proc.stdout
    assert "corrupt.mp3: beets could not read it (corrupt or not audio); not classified" in proc.stderr
    assert "installing beets-genreclass" in proc.stderr and not (tmp_path / "checkout" / "build").exists()
    # A real install: the package and its bundled models copied into the new environment.
    installed = {p.name for p in (tmp_path / "venv").rglob("site-packages/genre_model/bundled/*.onnx")}
    assert installed == {"genreclass-default.onnx", "genreclass-fast.onnx"}
    forced = subprocess.run([*run_sh, "--force"], capture_output=True, text=True, env=env, timeout=300)
    assert forced.returncode == 0, forced.stderr
    assert "installing" not in forced.stderr  # the checkout did not change: no second install
    assert "would be High" in forced.stdout and "pretend: 2 tracks classified" in forced.stdout


def test_write_and_nowrite_together_are_refused_and_a_misspelt_key_is_warned_about(music):
    music.settings["genreclass"]["min_confidance"] = 0.5
    assert only_error(music.run("genreclass", "-w", "-W", check=False)) == (
        "genreclass: -w/--write and -W/--nowrite contradict each other; give one of them"
    )
    warned = music.run("genreclass", "-p")
    assert "'min_confidance' is no genreclass setting (did you mean 'min_confidence'?)" in warned.stderr
