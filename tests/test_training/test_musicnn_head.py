"""The genre head on the pretrained musicnn: fine-tuning on pooled features or front-end outputs, export, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from genre_model import Classifier, ModelInfo
from genre_model.frontend import musicnn_frontend
from training.errors import ConfigError
from training.export.onnx_export import export_onnx
from training.models.musicnn.heads import (
    BackendConfig,
    BackendHead,
    MidendHead,
    MusicnnGenre,
    fit_backend,
    predict_backend,
)
from training.models.musicnn.network import load_pretrained
from training.pipelines.musicnn_recipe import Recipe


def test_pretrained_back_end_reproduces_musicnn_embedding():
    backbone = load_pretrained("msd_musicnn").eval()
    head = BackendHead.pretrained(3, backbone=backbone).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 2, (2, 96, 187)).astype(np.float32))
    with torch.no_grad():
        ours = head(backbone.pooled(x))[1]
        theirs = backbone(x).embedding
    torch.testing.assert_close(ours, theirs)


def test_pretrained_mid_end_head_on_cached_front_end_is_the_backbone():
    # Partial fine-tuning starts exactly where the network stands: the mid-end head on the front
    # end's output, even stored as float16 as the cache does, gives musicnn's own embedding.
    backbone = load_pretrained("msd_musicnn").eval()
    head = MidendHead.pretrained(3, backbone=backbone).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 2, (2, 96, 187)).astype(np.float32))
    with torch.no_grad():
        frontend = backbone.frontend(x)
        theirs = backbone(x).embedding
        torch.testing.assert_close(head(frontend)[1], theirs)
        half = head(frontend.half().float())[1]
    assert (half - theirs).abs().max() < 0.05 * theirs.abs().max()
    # The copy is the head's own: training it leaves the backbone untouched.
    assert head.midend[0].conv.weight.data_ptr() != backbone.midend[0].conv.weight.data_ptr()


@pytest.mark.slow
def test_fit_midend_learns_and_moves_the_mid_end():
    # Front-end outputs whose labels differ only in the rhythm of a few channels (on every other
    # frame, or 4 on then 4 off: the same mean and max, so only the time convs tell them apart).
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = rng.normal(0, 1, (256, 561, 187)).astype(np.float16)
    frames = np.arange(187)
    for i, label in enumerate(y):
        on = (frames % 2 == 0) if label == 0 else (frames % 8 < 4)
        x[i, :40, on] += 3
    config = BackendConfig(epochs=6, batch_size=32, tune_midend=True, midend_lr_scale=0.3, crop_frames=160)
    before = MidendHead.pretrained(2).midend[0].conv.weight.detach().clone()
    head = fit_backend(x, y, 2, config)
    assert isinstance(head, MidendHead)
    assert (head.midend[0].conv.weight - before).abs().max() > 1e-3
    accuracy = (predict_backend(head, x).argmax(axis=1) == y).mean()
    assert accuracy > 0.9, accuracy


@pytest.mark.slow
def test_fit_backend_learns_separable_windows():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 1506)).astype(np.float32)
    y = rng.integers(0, 3, 600)
    x = centres[y] + rng.normal(0, 1, (600, 1506)).astype(np.float32)
    head = fit_backend(x, y, 3, BackendConfig(epochs=5, batch_size=64))
    accuracy = (predict_backend(head, x).argmax(axis=1) == y).mean()
    assert accuracy > 0.9, accuracy


def test_export_carries_probabilities_and_the_named_embedding(tmp_path):
    backbone = load_pretrained("msd_musicnn")
    model = MusicnnGenre(backbone, BackendHead.pretrained(4, backbone=backbone)).eval()
    info = ModelInfo(name="mnn-test", version="1", labels=("A", "B", "C", "D"), frontend=musicnn_frontend())
    windows = np.random.default_rng(1).uniform(0, 2, (3, 96, 187)).astype(np.float32)
    result = export_onnx(model, info, tmp_path / "m.onnx", windows)
    assert result["max_abs_diff"] < 1e-4
    clf = Classifier(tmp_path / "m.onnx", device="cpu")
    assert clf.info.frontend == musicnn_frontend() and clf.info.labels == ("A", "B", "C", "D")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities", "embedding"]
    probs, embedding = session.run(None, {"input": windows})
    with torch.no_grad():
        logits, expected = model(torch.from_numpy(windows))
    np.testing.assert_allclose(embedding, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(probs, clf.window_probabilities(windows), atol=1e-6)


def test_export_of_a_mid_end_head_matches_torch(tmp_path):
    backbone = load_pretrained("msd_musicnn")
    model = MusicnnGenre(backbone, MidendHead.pretrained(2, backbone=backbone)).eval()
    info = ModelInfo(name="mnn-mid", version="1", labels=("A", "B"), frontend=musicnn_frontend())
    windows = np.random.default_rng(2).uniform(0, 2, (3, 96, 187)).astype(np.float32)
    assert export_onnx(model, info, tmp_path / "m.onnx", windows)["max_abs_diff"] < 1e-4


def test_recipe_rejects_unknown_keys(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "x", "backend": {"epochs": 3}, "comment": "why"}))
    assert Recipe.read(good).backend == {"epochs": 3}
    for bad in ({"epoch": 3}, {"backend": {"epoch": 3}}, {"backbone": "msd_vgg"}, "[1, 2]", "{not json"):
        path = tmp_path / "bad.json"
        path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
        with pytest.raises(ConfigError):
            Recipe.read(path)


@pytest.mark.slow
def test_head_command_builds_a_partially_fine_tuned_model(genre_folder, tmp_path):
    # `genreclass-train head` with a recipe that tunes the mid-end: front-end outputs cached,
    # the mid-end trained, one file that the plugin's runtime loads and that tells the clips apart.
    from click.testing import CliRunner

    from genre_model import classify_files
    from training.cli import main as cli

    recipe = tmp_path / "recipe.json"
    backend = {"epochs": 25, "batch_size": 16, "tune_midend": True, "crop_frames": 160}
    recipe.write_text(json.dumps({"name": "mid-test", "seed": 1, "backend": backend}))
    out, cache = tmp_path / "mid.onnx", tmp_path / "cache"
    args = ["head", str(genre_folder), "--config", str(recipe), "--out", str(out), "--cache", str(cache)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "fine-tuning the mid-end and back end: 24 tracks" in result.output
    assert len(list(cache.glob("musicnn-frontend-*-all/*.npy"))) == 24
    clf = Classifier(out, device="cpu")
    assert clf.info.training["arch"] == "musicnn-midend" and clf.info.training["backend_config"]["tune_midend"]
    paths = sorted(genre_folder.glob("*/*"))
    outcomes = list(classify_files(clf, paths, max_windows=4, workers=0))
    right = sum(o.prediction.genres[0][0] == Path(o.path).parent.name for o in outcomes)
    assert right >= 20, [(o.path, o.prediction.genres[:2]) for o in outcomes]
