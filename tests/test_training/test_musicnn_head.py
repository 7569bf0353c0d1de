"""The genre head on the pretrained musicnn: fine-tuning on pooled features, export, recipes."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from genre_model import Classifier, ModelInfo
from genre_model.frontend import musicnn_frontend
from training.export import export_onnx
from training.musicnn import load_pretrained
from training.musicnn_head import BackendConfig, BackendHead, MusicnnGenre, fit_backend, predict_backend
from training.musicnn_recipe import Recipe


def test_pretrained_back_end_reproduces_musicnn_embedding():
    backbone = load_pretrained("msd_musicnn").eval()
    head = BackendHead.pretrained(3, backbone=backbone).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 2, (2, 96, 187)).astype(np.float32))
    with torch.no_grad():
        ours = head(backbone.pooled(x))[1]
        theirs = backbone(x).embedding
    torch.testing.assert_close(ours, theirs)


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


def test_recipe_rejects_unknown_keys(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "x", "backend": {"epochs": 3}, "comment": "why"}))
    assert Recipe.read(good).backend == {"epochs": 3}
    for bad in ({"epoch": 3}, {"backend": {"epoch": 3}}, {"backbone": "msd_vgg"}):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            Recipe.read(path)
