"""`beet genreclass-train` on a small generated library: train, write, install, then tag with it.

Commands run in the test process, except where a package is hidden: an install without torch
or scikit-learn is a new `beet` process whose PYTHONPATH shadows them (this process has
imported torch already, so hiding it here would prove nothing).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers.audio import genre_sound, write_audio
from helpers.files import genres_in_file, set_tags
from helpers.library import BeetsLibrary, only_error
from helpers.models import build_tiny_backbone

from genre_model import Classifier

SR = 22050


def _tagged(path, kind: str, rng: np.random.Generator, genre: str | None, artist: str) -> None:
    """A 4-second `kind` of `genre_sound`, tagged."""
    write_audio(path, genre_sound(kind, rng, 4.0, SR), SR)
    set_tags(path, title=path.stem, artist=artist, albumartist=artist, genre=genre)


@pytest.fixture
def tagged_library(make_library) -> BeetsLibrary:
    """24 tagged tracks: 3 genres (spelt inconsistently) x 4 album artists x 2, plus 2 untagged."""
    beets = make_library(model="")
    rng = np.random.default_rng(0)
    spellings = {"drone": ["Drone", "drone"], "hiss": ["Hiss", "hiss noise"], "chime": ["Chime", "CHIME"]}
    for kind, names in spellings.items():
        for a in range(4):
            for k in range(2):
                _tagged(beets.music / f"{kind}-{a}-{k}.flac", kind, rng, names[k], f"{kind} artist {a}")
    for kind in ("drone", "chime"):
        _tagged(beets.music / f"new-{kind}.flac", kind, rng, None, "someone new")
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    return beets


@pytest.mark.slow
def test_train_writes_installs_and_genreclass_uses_the_new_vocabulary(tagged_library):
    # From the fast CNN: the torch fine-tuning path (a model with an embedding, as the default, gets a head: below).
    beets = tagged_library
    beets.settings["genreclass"]["model"] = "fast"
    (beets.root / "aliases.yaml").write_text("hiss noise: Hiss\n")
    out = beets.root / "mine.onnx"
    args = ["genreclass-train", "--min-tracks", "5", "--epochs", "4", "--alias", str(beets.root / "aliases.yaml"),
            "--out", str(out)]  # fmt: skip
    # 3 genres by 4 album artists each: a cross-validated estimate (torch: its first fold), then all 24 tracks.
    proc = beets.run(*args)
    text = proc.stdout + proc.stderr
    assert "genreclass-train: 3 genres: Chime, Drone, Hiss; 24 tracks by 12 artists" in proc.stderr, text
    assert "genreclass-train: 2 tracks left out: no genres" in proc.stderr
    assert proc.stderr.count("genreclass-train: training fine-tuning genreclass-fast@") == 2  # fold 1, then all
    assert "estimate: 5-fold cross-validation over artists" in proc.stdout
    assert "(fold 1 of 5 only (torch: each fold is a whole training))" in proc.stdout
    assert "standard error" in proc.stdout
    assert "knows none of these genres" in proc.stdout  # the bundled vocabulary has no Drone, Hiss or Chime
    assert "trained on all 24 tracks by 12 artists (Chime 8, Drone 8, Hiss 8)" in proc.stdout
    assert f"to use it: beet genreclass-train --install-file {out}" in proc.stdout
    assert out.is_file() and not (beets.root / "genreclass" / "model.onnx").exists()
    # A trained file is installed without retraining; a folder or a non-model is refused.
    assert "is a folder" in only_error(beets.run("genreclass-train", "--install-file", str(beets.root), check=False))
    (beets.root / "junk.onnx").write_bytes(b"not a model")
    bad = beets.run("genreclass-train", "--install-file", str(beets.root / "junk.onnx"), check=False)
    assert "not a loadable ONNX model" in only_error(bad)
    installed = beets.run("genreclass-train", "--install-file", str(out))
    assert "installed" in installed.stdout and (beets.root / "genreclass" / "model.onnx").is_file()
    card = json.loads((beets.root / "mine.card.json").read_text())
    assert card["labels"] == ["Chime", "Drone", "Hiss"] and card["start"].startswith("genreclass-fast@")
    assert card["trained_on"] == 24 and card["estimate"]["folds_evaluated"] == 1
    assert (beets.root / "mine.confusion.png").stat().st_size > 0
    # The file describes itself: the estimate and the architecture a later fine-tuning needs.
    info = Classifier(out, device="cpu").info
    assert info.model_id == card["model"] and info.labels == ("Chime", "Drone", "Hiss")
    assert info.metrics["track_accuracy"] == card["estimate"]["metrics"]["track_accuracy"]
    assert info.training["model_config"]["arch"] == "cnn"
    # The installed model is the plugin's model now: untagged tracks get genres of the new vocabulary.
    beets.settings["genreclass"].update(model="", min_confidence=0.3)  # a 4-epoch model: the point is its vocabulary
    tagged = beets.run("genreclass", "new-")
    assert "genreclass: 2 tracks classified" in tagged.stdout, tagged.stdout
    for path in beets.music.glob("new-*.flac"):
        assert genres_in_file(path)[0] in {"Chime", "Drone", "Hiss"}
    assert set(beets.field("genreclass_model").values()) >= {card["model"]}


def test_train_says_what_is_missing(tagged_library, tmp_path):
    beets = tagged_library
    proc = beets.run("genreclass-train", check=False)  # default --min-tracks 10: each genre has 8
    assert proc.returncode == 1 and "need at least 2 genres with 10 or more tagged tracks" in proc.error
    assert "needs 2 more" in proc.error
    proc = beets.run("genreclass-train", "--vocabulary", "Drone,Jazz", check=False)
    assert proc.returncode == 1 and "short: Jazz (0)" in proc.error
    proc = beets.run("genreclass-train", "--min-tracks", "5", "albumartist:drone artist 0", check=False)
    assert proc.returncode == 1 and "need at least 2 genres" in proc.error


def _hide(root, *modules: str) -> dict[str, str]:
    """Environment whose PYTHONPATH makes importing each of `modules` fail, as if not installed."""
    for name in modules:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (test)')\n")
    return {"PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.slow  # a `beet` process that loads the library and the base model: 3-4 s
def test_train_without_the_train_extra_says_what_to_install(tagged_library, tmp_path):
    tagged_library.settings["genreclass"]["model"] = "fast"  # a CNN base: fine-tuning needs torch
    env = _hide(tmp_path / "no-torch", "torch")
    error = only_error(tagged_library.run_process("genreclass-train", "--min-tracks", "5", check=False, env=env))
    assert "pip install 'beets-genreclass[train]'" in error and "torch" in error


@pytest.mark.slow
def test_a_model_with_an_embedding_gets_a_new_head_without_torch(tagged_library, tmp_path):
    beets = tagged_library
    backbone = build_tiny_backbone(tmp_path / "backbone.onnx", labels=("Drone", "Other"))
    beets.settings["genreclass"]["model"] = str(backbone)
    out, cache = beets.root / "head.onnx", beets.root / "cache"
    no_torch = _hide(tmp_path / "no-torch", "torch")
    (beets.root / "aliases.yaml").write_text("hiss noise: Hiss\n")
    args = ["genreclass-train", "--min-tracks", "5", "--out", str(out), "--cache", str(cache),
            "--alias", str(beets.root / "aliases.yaml")]  # fmt: skip
    proc = beets.run_process(*args, env=no_torch)
    text = proc.stdout + proc.stderr
    assert "genreclass-train: fold 5/5: head on" in proc.stderr, text
    assert (
        "genreclass-train: training a head on the embeddings of tiny-backbone@1: 24 tracks, 3 genres" in proc.stderr
    ), text
    assert (
        "estimate: 5-fold cross-validation over artists" in proc.stdout and ": 24 tracks by 12 artists" in proc.stdout
    )
    # The base model knows Drone: both are scored on the Drone tracks, on the same folds.
    assert "on the 8 tracks in genres both models know (Drone)" in proc.stdout, text
    card = json.loads((beets.root / "head.card.json").read_text())
    assert card["method"] == "head" and card["start"] == "tiny-backbone@1" and card["history"] == []
    assert card["estimate"]["metrics"]["n_tracks"] == 24 and (beets.root / "head.confusion.png").stat().st_size > 0
    info = Classifier(out, device="cpu").info
    assert info.metrics["track_accuracy"] == card["estimate"]["metrics"]["track_accuracy"] >= 0.5
    assert info.training["data"]["tracks"] == 24 and info.training["embedding_of"] == "tiny-backbone@1"
    assert len(list(cache.glob("tiny-backbone_1-8/*.npy"))) == 24  # embeddings, once per file
    # Installed, it tags the untagged tracks in the new vocabulary.
    beets.settings["genreclass"].update(model="", min_confidence=0.3)  # the point is the vocabulary, not the threshold
    beets.run("genreclass-train", "--install-file", str(out))
    tagged = beets.run_process("genreclass", "new-", env=no_torch)
    assert "genreclass: 2 tracks classified" in tagged.stdout, tagged.stdout
    assert {genres_in_file(p)[0] for p in beets.music.glob("new-*.flac")} <= set(info.labels)
    assert set(beets.field("genreclass_model").values()) >= {info.model_id}


def test_a_head_without_scikit_learn_says_what_to_install(tagged_library, tmp_path):
    beets = tagged_library
    beets.settings["genreclass"]["model"] = str(build_tiny_backbone(tmp_path / "backbone.onnx"))
    proc = beets.run_process("genreclass-train", check=False, env=_hide(tmp_path / "hidden", "torch", "sklearn"))
    error = only_error(proc)
    assert "scikit-learn not installed" in error and "pip install 'beets-genreclass[head]'" in error
