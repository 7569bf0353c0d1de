"""The bundled default model: present, self-describing, and right on real music."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers.audio import tone, write_audio
from helpers.markers import SHARED_DATA, needs_shared_data

from genre_model import Classifier, ModelError, bundled_model_path, classify_files

GTZAN_EMOTIFY_LABELS = (
    "Blues",
    "Classical",
    "Country",
    "Disco",
    "Electronic",
    "Hip-Hop",
    "Jazz",
    "Metal",
    "Pop",
    "Reggae",
    "Rock",
)
# The vocabulary of both (issue 22): GTZAN's and Emotify's, and Latin and R&B from the 4Q clips.
DEFAULT_LABELS = tuple(sorted((*GTZAN_EMOTIFY_LABELS, "Latin", "R&B")))
LABELS = {"default": DEFAULT_LABELS, "fast": DEFAULT_LABELS}
# Clips each was trained on: all three tables of the pool (those with a label of the vocabulary).
TRAIN_TRACKS = {"default": 1258, "fast": 1258}


@pytest.mark.parametrize(("name", "window_seconds"), [("default", 3.008), ("fast", 3.0)])
def test_bundled_models_are_small_and_describe_themselves(name, window_seconds):
    path = bundled_model_path(name)
    assert path.is_file() and path.stat().st_size < 10 * 1024 * 1024
    info = Classifier(path).info
    assert info.labels == LABELS[name]
    assert info.name == f"genreclass-{name}"
    assert info.frontend.window_seconds == window_seconds
    assert 0.6 < info.metrics["track_accuracy"] <= 1
    assert info.training["n_train_tracks"] == TRAIN_TRACKS[name]


def test_the_default_is_the_musicnn_model_with_its_embedding():
    info = Classifier().info
    assert info.training["arch"] == "musicnn-backend" and info.frontend.compression == "log1p"
    assert info.training["model_config"]["tag_prior_weight"] == 0.1  # musicnn's own tag output kept as a prior
    with pytest.raises(ModelError, match="no bundled model 'huge'"):
        bundled_model_path("huge")


@pytest.mark.parametrize("name", ["default", "fast"])
def test_bundled_models_run_on_generated_audio(tmp_path, name):
    path = write_audio(tmp_path / "t.mp3", tone(440.0, 10.0, channels=2), 44100)
    classifier = Classifier(bundled_model_path(name), device="cpu")
    (outcome,) = classify_files(classifier, [path], max_windows=8, workers=0)
    assert outcome.error is None and outcome.prediction.n_windows == 3
    # A distribution over the model's own labels, best first; which genre a sine tone gets is not asserted.
    genres = outcome.prediction.genres
    assert sorted(label for label, _ in genres) == sorted(LABELS[name])
    scores = [p for _, p in genres]
    assert scores == sorted(scores, reverse=True) and all(0 <= p <= 1 for p in scores)
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)
    # Each label keeps its own column's score through the vote: the mean of the three windows'.
    window_probs = outcome.prediction.window_probs
    assert window_probs.shape == (3, len(LABELS[name]))
    np.testing.assert_allclose([dict(genres)[label] for label in LABELS[name]], window_probs.mean(axis=0), atol=1e-6)


@pytest.mark.slow
@needs_shared_data
@pytest.mark.parametrize("name", ["default", "fast"])
def test_bundled_models_on_real_clips(name):
    # The models were trained on these clips, so this checks the shipped files work end to end
    # (decode, front end, graph, labels in order), not how well they generalise: see docs/BENCHMARKS.md.
    with open(SHARED_DATA / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    picked = [rows[i] for i in np.random.default_rng(0).choice(len(rows), 44, replace=False)]
    clf = Classifier(bundled_model_path(name))
    outcomes = classify_files(clf, [SHARED_DATA / r["path"] for r in picked], max_windows=8, workers=2)
    correct = [o.prediction.top == picked[o.index]["label"] for o in outcomes]
    assert len(correct) == 44 and np.mean(correct) >= 0.7
