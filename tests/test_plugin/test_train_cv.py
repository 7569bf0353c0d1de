"""`beet genreclass-train` with a cross-validated estimate, on a small library of real files as a
user's might be: fine genre names (lastgenre's), a compilation, a track with two genres, and a
`map` that writes one label in the user's spelling. The base model is a tiny one with an
embedding, so the head path runs (no torch) in seconds."""

from __future__ import annotations

import json

import mutagen
import numpy as np
import pytest
from helpers.audio import tone, write_audio
from helpers.files import genres_in_file
from helpers.library import BeetsLibrary
from helpers.models import build_tiny_backbone

from genre_model import Classifier

SR = 22050
# (sound, artist, genres of its two tracks, album artist): drones in three blues styles, chimes in
# three electronic ones, hiss tagged "Noise" (what `map: {Rock: Noise}` writes), two of its artists
# on one compilation.
LIBRARY = [
    ("drone", "Ann", "Delta Blues", "Ann"),
    ("drone", "Bo", "Chicago Blues", "Bo"),
    ("drone", "Cy", "Blues", "Cy"),
    ("chime", "Di", "Techno", "Di"),
    ("chime", "Ed", "House", "Ed"),
    ("chime", "Flo", "Electronic", "Flo"),
    ("hiss", "Gus", "Noise", "Gus"),
    ("hiss", "Hal", "Noise", "Various Artists"),
    ("hiss", "Ida", "Noise", "Various Artists"),
]


def _audio(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "drone":
        return tone(rng.uniform(90, 250), 3.0, SR)
    if kind == "hiss":
        return (0.1 * rng.standard_normal((3 * SR, 1))).astype(np.float32)
    return tone(rng.uniform(3000, 6000), 3.0, SR, amplitude=0.2)


def _write(path, audio, artist: str, albumartist: str, genres: list[str]) -> None:
    write_audio(path, audio, SR)
    f = mutagen.File(path)
    f["title"], f["artist"], f["albumartist"] = path.stem, artist, albumartist
    if albumartist == "Various Artists":
        f["album"] = "Noise Sampler"
    if genres:
        f["genre"] = genres
    f.save()


@pytest.fixture
def library(tmp_path, make_library) -> BeetsLibrary:
    """18 tagged tracks by 9 artists (Cy's second drone also tagged Electronic), one untagged hiss."""
    backbone = build_tiny_backbone(tmp_path / "backbone.onnx", labels=("Blues", "Other"))
    beets = make_library(model=backbone, map={"Rock": "Noise"})
    rng = np.random.default_rng(0)
    for kind, artist, genre, albumartist in LIBRARY:
        for k in range(2):
            genres = [genre, "Electronic"] if (artist, k) == ("Cy", 1) else [genre]
            _write(beets.music / f"{artist}-{k}.flac", _audio(kind, rng), artist, albumartist, genres)
    _write(beets.music / "new-hiss.flac", _audio("hiss", rng), "Someone", "Someone", [])
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    return beets


def test_fine_genres_by_one_artist_each_are_refused_with_the_way_out(library):
    proc = library.run("genreclass-train", "--min-tracks", "2", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no cross-validated estimate is possible" in proc.error
    assert "Delta Blues: all 2 tracks by one artist (Ann)" in proc.error
    assert "--rollup" in proc.error and "--force" in proc.error
    assert not list(library.root.rglob("*.onnx"))[1:]  # only the backbone


def test_rollup_estimate_install_and_map_across_vocabularies(library):
    beets = library
    out, cache = beets.root / "mine.onnx", beets.root / "cache"
    proc = beets.run("genreclass-train", "--min-tracks", "5", "--rollup", "--install", "--out", str(out),
                     "--cache", str(cache))  # fmt: skip
    text = proc.stdout + proc.stderr
    # Fine names went up beets' genre tree; the map's "Noise" was learnt as its label, Rock.
    assert "rolled up: Blues <- Chicago Blues 2, Delta Blues 2" in proc.stdout, text
    assert "rolled up: Electronic <- House 2, Techno 2" in proc.stdout
    assert "genreclass-train: 3 genres: Blues, Electronic, Rock; 18 tracks by 9 artists" in proc.stderr
    # 9 artists (the compilation's two counted apart) in 5 folds; each track predicted once.
    assert "estimate: 5-fold cross-validation over artists" in proc.stdout
    assert ": 18 tracks by 9 artists" in proc.stdout
    assert "per genre, recall / precision (tracks): Blues" in proc.stdout
    assert "on the 6 tracks in genres both models know (Blues)" in proc.stdout  # the base knows Blues
    assert "trained on all 18 tracks by 9 artists (Blues 6, Electronic 7, Rock 6; 1 with several genres)" in proc.stdout
    assert f"installed {out} (Blues, Electronic, Rock)" in proc.stdout
    card = json.loads((beets.root / "mine.card.json").read_text())
    estimate = card["estimate"]
    assert estimate["metrics"]["n_tracks"] == 18 and len(estimate["per_fold"]) == 5
    assert estimate["metrics"]["track_accuracy"] >= 0.8
    assert card["data"]["rolled_up"] == ["Blues <- Chicago Blues 2, Delta Blues 2", "Electronic <- House 2, Techno 2"]
    assert (beets.root / "mine.confusion.png").stat().st_size > 0
    assert len(list(cache.rglob("*.npy"))) >= 18
    info = Classifier(out, device="cpu").info
    assert info.metrics["protocol"].startswith("5-fold cross-validation over artists")
    # The installed model tags in its vocabulary, through the user's map: Rock is written as Noise.
    beets.settings["genreclass"]["model"] = ""
    tagged = beets.run("genreclass", "new-")
    assert "genreclass: 1 track classified" in tagged.stdout, tagged.stdout
    assert genres_in_file(beets.music / "new-hiss.flac") == ["Noise"]


def test_forced_without_an_estimate_and_a_map_the_model_lacks(library):
    beets = library
    beets.settings["genreclass"]["map"] = {"Rock": "Noise", "Disco": ""}
    out = beets.root / "forced.onnx"
    proc = beets.run("genreclass-train", "--min-tracks", "2", "--force", "--install", "--out", str(out),
                     check=False)  # fmt: skip
    assert "no estimate: Blues: all 2 tracks by one artist (Cy); Chicago Blues:" in proc.stdout
    assert "without an estimate (--force); its card says so" in proc.stdout
    assert json.loads((beets.root / "forced.card.json").read_text())["estimate"] is None
    # The map names Disco, which this model lacks: `beet genreclass` would stop on it, so it is not installed.
    assert proc.returncode == 1 and f"{out} not installed: its labels (Blues, " in proc.error
    assert "lack genreclass.map's key Disco, and 'beet genreclass' would stop on it" in proc.error
    assert f"--install-file {out}" in proc.error
    assert out.is_file() and not (beets.root / "genreclass" / "model.onnx").exists()


def test_help_explains_the_estimate_and_the_options(library):
    proc = library.run("genreclass-train", "--help")
    for part in ("cross-validation over artists [5", "--rollup", "genre tree", "--force", "set it may carry"):
        assert part in proc.stdout, part
    assert "--valid-fraction" not in proc.stdout
    bad = library.run("genreclass-train", "--folds", "1", check=False)
    assert bad.returncode == 1 and "--folds >= 2" in (bad.error or bad.stderr)
