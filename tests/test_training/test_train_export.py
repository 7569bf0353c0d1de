"""A few training steps on generated audio, export parity, evaluation metrics, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.audio import tone, write_audio, write_damaged_mp3, write_tone
from helpers.markers import needs_ffmpeg

from genre_model import Classifier, FrontendConfig, ModelInfo, classify_files, track_features, window_starts
from genre_model.windows import MIN_TRACK_SECONDS
from training.cli import main as cli
from training.data.splits import group_holdout
from training.data.tracks import Track, load_folder
from training.engine.config import AugmentConfig, TrainConfig
from training.engine.loop import fit, lr_at
from training.errors import ConfigError, ResumeMismatchError
from training.evaluation.metrics import metrics_from_probs, track_metrics
from training.export.onnx_export import PARITY_TOLERANCE, export_onnx
from training.features.cache import MAX_SECONDS
from training.features.inputs import LogMelInputs
from training.features.windows import inference_windows, prepare

FE = FrontendConfig()


@pytest.fixture(scope="module")
def trained(genre_folder, tmp_path_factory):
    tracks = load_folder(genre_folder)
    labels = sorted({t.label for t in tracks})
    train_t, valid_t = group_holdout(tracks, 0.25, seed=0)
    inputs = LogMelInputs(tmp_path_factory.mktemp("cache"), FE, workers=2)
    train_w, failures = prepare(train_t, labels, inputs)
    valid_w, _ = inference_windows(valid_t, labels, inputs, 8)
    assert not failures and len(train_w) == len(train_t)
    cfg = TrainConfig(epochs=6, batch_size=16, windows_per_track=8, lr=3e-3, channels=(8, 16), device="cpu", patience=0)
    out = tmp_path_factory.mktemp("run")
    result = fit(train_w, valid_w, cfg, out_dir=out, log=lambda s: None)
    return result, train_w, valid_w, labels, out, cfg


@pytest.mark.slow
def test_training_reduces_the_loss_and_learns(trained):
    result, _, _, _, out, cfg = trained
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.75 * losses[0]
    assert max(h["valid_track_accuracy"] for h in result.history) >= 0.8
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    assert TrainConfig.read(out / "config.json") == cfg  # the resolved config, itself a recipe
    assert torch.load(out / "best.pt", weights_only=True)["model_config"]["n_labels"] == 3


class Interrupted(Exception):
    pass


def _interrupt_after(epoch: int):
    def log(line: str) -> None:
        if line.startswith(f"epoch {epoch:3d}"):
            raise Interrupted

    return log


def _figures(history: list[dict]) -> np.ndarray:
    return np.array([[h[k] for k in ("train_loss", "valid_loss", "valid_track_accuracy", "lr")] for h in history])


@pytest.mark.slow
def test_an_interrupted_run_resumes_exactly_where_it_stopped(trained, tmp_path):
    _, train_w, valid_w, _, _, cfg = trained
    cfg = dataclasses.replace(cfg, epochs=4, windows_per_track=4)
    whole = fit(train_w, valid_w, cfg, out_dir=tmp_path / "whole", log=lambda s: None)
    with pytest.raises(Interrupted):
        fit(train_w, valid_w, cfg, out_dir=tmp_path / "cut", log=_interrupt_after(2))
    lines: list[str] = []
    resumed = fit(train_w, valid_w, cfg, out_dir=tmp_path / "cut", log=lines.append, resume=True)
    assert lines[0] == "resuming after epoch 2"
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_allclose(_figures(resumed.history), _figures(whole.history), rtol=0, atol=1e-6)
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=1e-6)


def test_resuming_with_other_settings_is_refused_before_anything_is_written(trained, tmp_path):
    _, train_w, valid_w, _, out, cfg = trained
    before = {name: (out / name).read_bytes() for name in ("config.json", "last.pt")}
    changed = dataclasses.replace(cfg, lr=1e-3, augment=dataclasses.replace(cfg.augment, mixup_alpha=0.0))
    with pytest.raises(ResumeMismatchError, match=r"augment\.mixup_alpha \(0\.3 -> 0\.0\); lr \(0\.003 -> 0\.001\)"):
        fit(train_w, valid_w, changed, out_dir=out, log=lambda s: None, resume=True)
    with pytest.raises(ResumeMismatchError, match=r"epochs \(6 -> 7\)"):
        fit(train_w, valid_w, dataclasses.replace(cfg, epochs=7), out_dir=out, log=lambda s: None, resume=True)
    assert before == {name: (out / name).read_bytes() for name in before}
    # Where it runs is no setting of the run: another device or thread count resumes.
    lines: list[str] = []
    fit(train_w, valid_w, dataclasses.replace(cfg, device="auto"), out_dir=out, log=lines.append, resume=True)
    assert lines == ["resuming after epoch 6"]


@pytest.mark.slow
def test_export_parity_and_the_runtime_classifies_real_files(trained, tmp_path, genre_folder):
    result, _, valid_w, labels, _, _ = trained
    windows = np.concatenate([w[:2] for w in valid_w.windows])
    info = ModelInfo("test", "1", tuple(labels), FE, {"n": 18}, {"track_accuracy": 1.0})
    parity = export_onnx(result.model, info, tmp_path / "m.onnx", windows)
    assert parity["max_abs_diff"] <= PARITY_TOLERANCE
    clf = Classifier(tmp_path / "m.onnx", device="cpu")
    assert clf.info.labels == tuple(labels) and clf.info.frontend == FE
    tracks = load_folder(genre_folder)
    outcomes = list(classify_files(clf, [t.path for t in tracks], max_windows=4, workers=0))
    correct = [o.prediction.top == tracks[o.index].label for o in outcomes]
    assert np.mean(correct) >= 0.8


def test_validation_analyses_the_windows_the_plugin_analyses(tmp_path):
    """A track longer than the cached central excerpt: validation still sees windows placed over
    the whole file, as `genre_model.track_features` places them."""
    seconds = MAX_SECONDS + 30
    t = np.arange(int(seconds * 22050)) / 22050
    write_audio(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * (100 + t) * t)).astype(np.float32)[:, None], 22050)
    track = Track(str(tmp_path / "long.wav"), "Tone", "g", "s")
    inputs = LogMelInputs(tmp_path / "cache", FE)
    got, failures = inference_windows([track], ["Noise", "Tone"], inputs, 8)
    assert not failures and got.targets.tolist() == [1]
    expected = track_features(track.path, FE, 8)
    assert window_starts(seconds, FE.window_seconds, 8)[0] < (seconds - MAX_SECONDS) / 2  # outside the excerpt
    np.testing.assert_allclose(got.windows[0], expected, atol=1e-4)  # the placement; float noise across processes
    again, _ = inference_windows([track], ["Noise", "Tone"], inputs, 8)  # read back from the cache
    np.testing.assert_array_equal(again.windows[0], got.windows[0])


def test_a_track_shorter_than_one_window_trains_as_the_plugin_hears_it(tmp_path):
    """A 2-s excerpt (the GTZAN fragments are 2-3 s) is padded to one window for training exactly
    as the plugin pads it (`genre_model.windows`); under MIN_TRACK_SECONDS both refuse it."""
    write_audio(tmp_path / "short.wav", tone(440, 2.0, 22050), 22050)
    write_audio(tmp_path / "tiny.wav", tone(440, 0.5, 22050), 22050)
    inputs = LogMelInputs(tmp_path / "cache", FE)
    (spectrogram, refused), failures = inputs.training([str(tmp_path / "short.wav"), str(tmp_path / "tiny.wav")], print)
    assert spectrogram.shape == (FE.n_mels, FE.n_frames) and refused is None
    # The cache stores float16: 0.03 dB of rounding at -70 dB.
    np.testing.assert_allclose(spectrogram, track_features(tmp_path / "short.wav", FE, 8)[0], atol=0.05)
    assert list(failures.values()) == [f"too short to classify: 0.50 s < {MIN_TRACK_SECONDS} s"]


@needs_ffmpeg
def test_a_damaged_file_is_left_out_in_words_without_codec_chatter(tmp_path, capfd):
    """One decoding process (`workers` 1, as `beet genreclass-train` on one core): the features
    are computed in this process, where libmpg123 would print its resync notes on stderr."""
    good = str(write_tone(tmp_path / "good.flac", 300.0, seconds=5.0))
    damaged = str(write_damaged_mp3(tmp_path / "damaged.mp3"))
    inputs = LogMelInputs(tmp_path / "cache", FE, workers=1)
    found, failures = inputs.training([good, damaged], log=lambda line: None)
    assert failures == {damaged: "truncated or damaged: libsndfile could not decode the MP3 data"}
    assert found[0] is not None and found[1] is None
    assert capfd.readouterr().err == ""


def test_lr_schedule_is_a_pure_function():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.01)
    assert lr_at(55, 100, 1.0, 10) == pytest.approx(0.01 + 0.99 * 0.5)


def test_metrics_on_a_known_case():
    m = track_metrics(["A", "A", "B", "B"], ["A", "B", "B", "B"], ["A", "B", "C"], window_correct=5, window_total=8)
    assert m["track_accuracy"] == 0.75 and m["window_accuracy"] == 0.625
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert m["per_class"]["A"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
        "predicted": 1,
    }
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
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "fast.json"
    # The recipe's vocabulary is the pool's; these clips bring their own.
    args = ["fit", str(genre_folder), "--out", str(out), "--config", str(recipe), "--set", "labels=[]", "--epochs", "2",
            "--device", "cpu"]  # fmt: skip
    res = runner.invoke(cli, [*args, "--set", "valid_fraction=0.25", "--set", "augment.mixup_alpha=0.1"])
    assert res.exit_code == 0, res.output
    assert (out / "model.onnx").exists() and (out / "metrics.json").exists() and (out / "learning_curves.png").exists()
    # The recipe, then --set, then the flags; the result saved with the run and in the model file.
    expected = TrainConfig.read(recipe).with_overrides(
        {"epochs": 2, "device": "cpu", "valid_fraction": 0.25, "augment.mixup_alpha": 0.1, "labels": []}
    )
    assert TrainConfig.read(out / "config.json") == expected
    info = Classifier(out / "model.onnx").info
    assert info.labels == ("Clicks", "Noise", "Tone") and info.name == "genreclass-fast"
    assert TrainConfig.from_dict(info.training["config"]) == expected
    res = runner.invoke(
        cli, ["evaluate", str(out / "model.onnx"), str(genre_folder), "--out", str(tmp_path / "ev"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n_tracks"] == 24 and set(metrics) >= {"track_accuracy", "per_class", "confusion", "macro_f1"}
    res = runner.invoke(cli, ["export", str(out / "best.pt"), "--out", str(tmp_path / "again.onnx")])
    assert res.exit_code == 0, res.output
    again = Classifier(tmp_path / "again.onnx").info
    assert again.labels == ("Clicks", "Noise", "Tone") and again.name == "genreclass-fast"  # the run's name


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


def _one_line_error(res) -> str:
    """The message of a command that failed with a one-line error and no traceback."""
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_bad_devices_and_settings_are_one_line_errors(tmp_path, genre_folder):
    runner = CliRunner()
    fit_args = ["fit", str(genre_folder), "--out", str(tmp_path / "o")]
    res = runner.invoke(cli, [*fit_args, "--device", "tpu"])
    assert res.exit_code == 2 and "device must be auto, cpu, cuda or cuda:N, got 'tpu'" in _one_line_error(res)
    # A CUDA device torch cannot see: refused before any feature is computed.
    res = runner.invoke(cli, [*fit_args, "--device", "cuda:99"])
    assert res.exit_code == 1 and "device cuda:99: torch sees" in _one_line_error(res)
    assert not (tmp_path / "feature-cache").exists()
    res = runner.invoke(cli, [*fit_args, "--set", "augment.mixup=0"])
    assert res.exit_code == 2 and "unknown setting 'augment.mixup'" in _one_line_error(res)
    res = runner.invoke(cli, [*fit_args, "--set", "epochs=many"])
    assert res.exit_code == 2 and "epochs must be int, got 'many'" in _one_line_error(res)
    (tmp_path / "typo.json").write_text('{"epoch": 3}')
    res = runner.invoke(cli, [*fit_args, "--config", str(tmp_path / "typo.json")])
    assert res.exit_code == 2 and "unknown settings epoch" in _one_line_error(res)


def test_settings_come_from_defaults_then_recipe_then_overrides(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"comment": "x", "epochs": 5, "channels": [4, 8], "augment": {"gain_db": 1}}))
    cfg = TrainConfig.read(recipe)
    assert cfg == TrainConfig(epochs=5, channels=(4, 8), augment=AugmentConfig(gain_db=1.0))
    cfg = cfg.with_overrides({"epochs": 7, "augment.tilt_db": 2})
    assert (cfg.epochs, cfg.channels, cfg.augment.gain_db, cfg.augment.tilt_db) == (7, (4, 8), 1.0, 2.0)
    assert cfg.differences(TrainConfig()) == ["augment.gain_db", "augment.tilt_db", "channels", "epochs"]
    assert TrainConfig(device="cuda").differences(TrainConfig(threads=3)) == []
    with pytest.raises(ConfigError, match="class_balance must be in"):
        TrainConfig().with_overrides({"class_balance": 2})
