"""Knowledge distillation: a teacher's probabilities as soft targets for the small CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from genre_model import Classifier, FrontendConfig, track_features
from training.cli import main as cli
from training.data.tracks import load_folder
from training.engine.config import AugmentConfig, TrainConfig
from training.engine.distill import teacher_probabilities
from training.engine.loop import fit, track_probabilities
from training.errors import ConfigError
from training.features.inputs import LogMelInputs
from training.features.windows import inference_windows, prepare

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "fast.json"


@pytest.mark.slow
def test_the_student_learns_what_the_teacher_says(genre_folder, tmp_path):
    # A teacher that calls every Tone track Noise and every Noise track Tone: with distill_weight
    # 1 the labels are ignored, so the student must learn the swap (and, with 0, the labels).
    tracks = load_folder(genre_folder)
    labels = sorted({t.label for t in tracks})  # Clicks, Noise, Tone
    inputs = LogMelInputs(tmp_path / "cache", FrontendConfig(), workers=2)
    train_w, _ = prepare(tracks, labels, inputs)
    windows, _ = inference_windows(tracks, labels, inputs, 4)
    swap = np.array([0, 2, 1])  # Clicks stays, Noise <-> Tone
    train_w.teacher_probs = np.eye(3, dtype=np.float32)[swap[train_w.targets]]
    quiet = AugmentConfig(mixup_alpha=0.0)
    cfg = TrainConfig(epochs=6, batch_size=16, windows_per_track=8, channels=(8, 16), device="cpu", patience=0,
                      keep_best=False, label_smoothing=0.0, augment=quiet)  # fmt: skip
    for weight, expected in ((1.0, swap[train_w.targets]), (0.0, train_w.targets)):
        result = fit(train_w, None, TrainConfig(**{**cfg.__dict__, "distill_weight": weight}), log=lambda s: None)
        probs = track_probabilities(result.model, windows.windows, next(result.model.parameters()).device)
        predicted = np.array([p.mean(axis=0).argmax() for p in probs])
        assert (predicted == expected).mean() >= 0.8, (weight, predicted, expected)


def test_distillation_without_teacher_probabilities_is_refused(genre_folder, tmp_path):
    tracks = load_folder(genre_folder)
    labels = sorted({t.label for t in tracks})
    train_w, _ = prepare(tracks[:6], labels, LogMelInputs(tmp_path, FrontendConfig(), workers=1))
    with pytest.raises(ConfigError, match="teacher"):
        fit(train_w, None, TrainConfig(epochs=1, distill_weight=0.5, device="cpu"), log=lambda s: None)
    with pytest.raises(ConfigError, match="distill_weight"):
        TrainConfig(distill_weight=1.5)


@pytest.mark.slow
def test_cli_fit_distills_from_a_teacher_file(genre_folder, tmp_path, tiny_model):
    runner = CliRunner()
    # The recipe's vocabulary is the pool's; these clips bring their own.
    base = ["fit", str(genre_folder), "--config", str(RECIPE), "--set", "labels=[]", "--epochs", "2", "--device", "cpu"]
    res = runner.invoke(cli, [*base, "--out", str(tmp_path / "teacher")])
    assert res.exit_code == 0, res.output
    teacher = tmp_path / "teacher" / "model.onnx"

    # The teacher's view of the tracks: rows of probabilities in the student's label order.
    tracks = load_folder(genre_folder)
    probs = teacher_probabilities(tracks, ["Tone", "Noise", "Clicks"], teacher, workers=1, log=lambda s: None)
    assert probs.shape == (24, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    clf = Classifier(teacher)
    direct = clf.predict([track_features(tracks[0].path, clf.info.frontend, 8)])[0]
    assert np.allclose(probs[0], direct.window_probs.mean(axis=0)[[2, 1, 0]], atol=1e-5)

    res = runner.invoke(
        cli, [*base, "--out", str(tmp_path / "student"), "--set", "distill_weight=0.5", "--set", f"teacher={teacher}"]
    )
    assert res.exit_code == 0, res.output
    assert "distillation: weight 0.5" in res.output and "24/24 tracks" in res.output
    assert Classifier(tmp_path / "student" / "model.onnx").info.training["config"]["distill_weight"] == 0.5

    # A teacher of other labels, or none: one clear line, nothing trained.
    for extra, message in (([f"teacher={tiny_model}"], "distillation needs the same labels"), ([], "needs a teacher")):
        sets = [x for e in ["distill_weight=0.5", *extra] for x in ("--set", e)]
        res = runner.invoke(cli, [*base, "--out", str(tmp_path / "bad"), *sets])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
        assert not (tmp_path / "bad" / "model.onnx").exists()
