"""The bundled default model: present, self-describing, and right on real music."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from audio_factory import tone, write_audio
from markers import SHARED_DATA, needs_shared_data

from genre_model import Classifier, bundled_model_path, classify_files

LABELS = ("Blues", "Classical", "Country", "Disco", "Electronic", "Hip-Hop", "Jazz", "Metal", "Pop", "Reggae", "Rock")


def test_bundled_model_is_small_and_describes_itself():
    path = bundled_model_path()
    assert path.is_file() and path.stat().st_size < 10 * 1024 * 1024
    info = Classifier().info
    assert info.labels == LABELS
    assert info.name == "genreclass-default"
    assert info.frontend.window_seconds == 3.0
    assert 0 < info.metrics["track_accuracy"] <= 1
    assert info.training["n_train_tracks"] == 712


def test_bundled_model_runs_on_generated_audio(tmp_path):
    path = write_audio(tmp_path / "t.mp3", tone(440.0, 10.0, channels=2), 44100)
    (outcome,) = classify_files(Classifier(device="cpu"), [path], max_windows=8, workers=0)
    assert outcome.prediction.n_windows == 3
    assert sum(p for _, p in outcome.prediction.genres) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
@needs_shared_data
def test_bundled_model_on_real_clips():
    # The model was trained on these clips, so this checks the shipped file works end to end
    # (decode, front end, graph, labels in order), not how well it generalises: see docs/BENCHMARKS.md.
    with open(SHARED_DATA / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    picked = [rows[i] for i in np.random.default_rng(0).choice(len(rows), 44, replace=False)]
    outcomes = classify_files(Classifier(), [SHARED_DATA / r["path"] for r in picked], max_windows=8, workers=2)
    correct = [o.prediction.top == picked[o.index]["label"] for o in outcomes]
    assert len(correct) == 44 and np.mean(correct) >= 0.7
