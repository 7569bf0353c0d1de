"""A few training steps on generated audio, export parity, evaluation metrics, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from genre_model import Classifier, FrontendConfig, ModelInfo, classify_files
from training.cli import main as cli
from training.datasets import load_folder
from training.evaluate import metrics_from_probs, track_metrics
from training.export import PARITY_TOLERANCE, export_onnx
from training.features import FeatureCache
from training.models import ModelConfig
from training.splits import group_holdout
from training.train import TrainConfig, fit, lr_at
from training.windows import prepare

FE = FrontendConfig()
SMALL = ModelConfig(channels=(8, 16))


@pytest.fixture(scope="module")
def trained(genre_folder, tmp_path_factory):
    tracks = load_folder(genre_folder)
    labels = sorted({t.label for t in tracks})
    train_t, valid_t = group_holdout(tracks, 0.25, seed=0)
    cache = FeatureCache(tmp_path_factory.mktemp("cache"), FE)
    digests: dict[str, str] = {}
    train_w, failures = prepare(train_t, labels, cache, digests, workers=2)
    valid_w, _ = prepare(valid_t, labels, cache, digests)
    assert not failures and len(train_w) == len(train_t)
    cfg = TrainConfig(epochs=6, batch_size=16, windows_per_track=8, lr=3e-3, model=SMALL, device="cpu", patience=0)
    out = tmp_path_factory.mktemp("run")
    result = fit(train_w, valid_w, cfg, out_dir=out, log=lambda s: None)
    return result, train_w, valid_w, labels, out, cfg


@pytest.mark.slow
def test_training_reduces_the_loss_and_learns(trained):
    result, _, _, _, out, _ = trained
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.75 * losses[0]
    assert max(h["valid_track_accuracy"] for h in result.history) >= 0.8
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    assert json.loads((out / "config.json").read_text())["model"]["n_labels"] == 3


@pytest.mark.slow
def test_resume_continues_from_the_last_epoch(trained):
    first, train_w, valid_w, _, out, cfg = trained
    longer = TrainConfig(**{**cfg.__dict__, "epochs": 7})
    lines: list[str] = []
    result = fit(train_w, valid_w, longer, out_dir=out, log=lines.append, resume=True)
    assert [h["epoch"] for h in result.history] == list(range(1, 8))
    # Epochs 1-6 come from the checkpoint, not from training again: only epoch 7 is trained.
    assert result.history[:6] == first.history
    assert lines[0] == "resuming after epoch 6"
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["7"]


@pytest.mark.slow
def test_export_parity_and_the_runtime_classifies_real_files(trained, tmp_path, genre_folder):
    result, _, valid_w, labels, _, _ = trained
    windows = np.concatenate([valid_w.eval_windows(i, 2) for i in range(len(valid_w))])
    info = ModelInfo("test", "1", tuple(labels), FE, {"n": 18}, {"track_accuracy": 1.0})
    parity = export_onnx(result.model, info, tmp_path / "m.onnx", windows)
    assert parity["max_abs_diff"] <= PARITY_TOLERANCE
    clf = Classifier(tmp_path / "m.onnx", device="cpu")
    assert clf.info.labels == tuple(labels) and clf.info.frontend == FE
    tracks = load_folder(genre_folder)
    outcomes = list(classify_files(clf, [t.path for t in tracks], max_windows=4, workers=0))
    correct = [o.prediction.top == tracks[o.index].label for o in outcomes]
    assert np.mean(correct) >= 0.8


def test_lr_schedule_is_a_pure_function():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.01)
    assert lr_at(55, 100, 1.0, 10) == pytest.approx(0.01 + 0.99 * 0.5)


def test_metrics_on_a_known_case():
    m = track_metrics(["A", "A", "B", "B"], ["A", "B", "B", "B"], ["A", "B", "C"], window_correct=5, window_total=8)
    assert m["track_accuracy"] == 0.75 and m["window_accuracy"] == 0.625
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert m["per_class"]["A"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["B"]["precision"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == 0.75  # C has no true tracks and is left out of the means
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    probs = [np.array([[0.9, 0.1, 0.0]]), np.array([[0.2, 0.8, 0.0], [0.6, 0.4, 0.0]]), np.array([[0.5, 0.5, 0.0]])]
    m = metrics_from_probs(probs, ["A", "B", "Jazz"], ["A", "B", "C"], ["s1", "s2", "s1"])
    assert m["n_tracks"] == 2 and m["n_skipped"] == 1 and m["track_accuracy"] == 1.0
    assert m["window_accuracy"] == pytest.approx(2 / 3)
    assert m["per_source"]["s2"]["n_tracks"] == 1


@pytest.mark.slow
def test_cli_fit_evaluate_export(genre_folder, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(cli, ["fit", str(genre_folder), "--out", str(out), "--epochs", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (out / "model.onnx").exists() and (out / "metrics.json").exists() and (out / "learning_curves.png").exists()
    assert Classifier(out / "model.onnx").info.labels == ("Clicks", "Noise", "Tone")
    res = runner.invoke(
        cli, ["evaluate", str(out / "model.onnx"), str(genre_folder), "--out", str(tmp_path / "ev"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n_tracks"] == 24 and set(metrics) >= {"track_accuracy", "per_class", "confusion", "macro_f1"}
    res = runner.invoke(cli, ["export", str(out / "best.pt"), "--out", str(tmp_path / "again.onnx")])
    assert res.exit_code == 0, res.output
    assert Classifier(tmp_path / "again.onnx").info.labels == ("Clicks", "Noise", "Tone")


def test_cli_errors_are_clear(tmp_path, genre_folder):
    runner = CliRunner()
    res = runner.invoke(cli, ["fit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a folder, manifest" in res.output
    res = runner.invoke(cli, ["fit", str(genre_folder), "--out", str(tmp_path / "o"), "--min-tracks", "20"])
    assert res.exit_code == 2 and "fewer than --min-tracks 20" in res.output and "Tone (8)" in res.output
    empty = tmp_path / "empty"
    (empty / "Rock").mkdir(parents=True)
    res = runner.invoke(cli, ["fit", str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no audio files" in res.output
