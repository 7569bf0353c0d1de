"""A personal head on a model's embedding: fitted with scikit-learn, appended with onnx, no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from helpers.audio import genre_sound, write_audio
from helpers.models import TINY_FRONTEND, build_tiny_backbone

from genre_model import Classifier, ModelInfo, track_features
from training.errors import NoEmbeddingError
from training.models.personal_head import (
    HEAD_PARITY_TOLERANCE,
    LinearHead,
    append_head,
    fit_head,
    has_embedding,
    softmax,
    window_embeddings,
)

LABELS = ("Drone", "Hiss", "Chime")


@pytest.fixture
def backbone(tmp_path):
    return build_tiny_backbone(tmp_path / "backbone.onnx")


@pytest.fixture
def sounds(tmp_path):
    """Two 4-second files of each kind, in several formats: (path, label index)."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(2):
        for label, (kind, ext) in enumerate((("drone", ".mp3"), ("hiss", ".ogg"), ("chime", ".flac"))):
            out.append((write_audio(tmp_path / f"{kind}{k}{ext}", genre_sound(kind, rng, 4.0, 22050), 22050), label))
    return out


def _info(name: str = "mine") -> ModelInfo:
    return ModelInfo(name, "1", LABELS, TINY_FRONTEND, {"arch": "tiny-backbone", "start": "tiny-backbone@1"})


def test_appended_head_is_the_numpy_head_and_keeps_the_embedding(backbone, sounds, tmp_path):
    windows = np.concatenate([track_features(p, TINY_FRONTEND, 3) for p, _ in sounds])
    base = Classifier(backbone, device="cpu")
    embedding = base.window_outputs(windows, "embedding")
    head = LinearHead(*(np.random.default_rng(0).normal(0, 1, s).astype(np.float32) for s in ((8, 3), (3,))))
    out = tmp_path / "mine.onnx"
    parity = append_head(backbone, head.weights, head.bias, _info(), out, windows[:4])
    assert parity["n_windows"] == 4 and parity["max_abs_diff"] <= HEAD_PARITY_TOLERANCE
    new = Classifier(out, device="cpu")
    assert new.output_names == ("probabilities", "embedding") and new.info.labels == LABELS
    expected = softmax(embedding @ head.weights + head.bias)
    np.testing.assert_allclose(new.window_probabilities(windows), expected, atol=1e-5)
    np.testing.assert_array_equal(new.window_outputs(windows, "embedding"), embedding)
    assert new.info.training["embedding_of"] == "tiny-backbone@1" and new.info.training["start"] == "tiny-backbone@1"
    # The old output layer's branch is gone from the file; the embedding's nodes are all kept.
    graph = onnx.load(str(out)).graph
    assert [n.op_type for n in graph.node] == ["ReduceMean", "MatMul", "MatMul", "Add", "Softmax"]
    assert "old_w" not in {t.name for t in graph.initializer}
    assert [p.top for p in new.predict([windows[:3], windows[-3:]])] == [
        LABELS[int(expected[:3].mean(0).argmax())],
        LABELS[int(expected[-3:].mean(0).argmax())],
    ]
    # A head on the new file reads the same embedding, so it names the same source.
    second = ModelInfo("again", "1", LABELS[:2], TINY_FRONTEND)
    again = append_head(out, head.weights[:, :2], head.bias[:2], second, tmp_path / "again.onnx", windows[:2])
    assert again["max_abs_diff"] <= HEAD_PARITY_TOLERANCE
    assert Classifier(tmp_path / "again.onnx").info.training["embedding_of"] == "tiny-backbone@1"


def test_a_model_without_embedding_is_refused_with_the_reason(tiny_model, sounds, tmp_path):
    assert not has_embedding(tiny_model)
    with pytest.raises(NoEmbeddingError, match="no 'embedding' output"):
        append_head(tiny_model, np.zeros((32, 3), np.float32), np.zeros(3, np.float32), _info(), tmp_path / "x.onnx")
    with pytest.raises(NoEmbeddingError, match="no 'embedding' output"):
        window_embeddings(tiny_model, [str(sounds[0][0])], 3, 0, tmp_path / "cache")
    assert not (tmp_path / "x.onnx").exists()


def test_a_head_that_does_not_fit_the_embedding_is_refused(backbone, tmp_path):
    with pytest.raises(ValueError, match="width 8"):
        append_head(backbone, np.zeros((5, 3), np.float32), np.zeros(3, np.float32), _info(), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="3 labels"):
        append_head(backbone, np.zeros((8, 2), np.float32), np.zeros(2, np.float32), _info(), tmp_path / "x.onnx")


def test_embeddings_are_cached_by_content_and_reused(backbone, sounds, tmp_path):
    paths = [str(p) for p, _ in sounds]
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3 not really an mp3" * 10)
    cache = tmp_path / "cache"
    lines: list[str] = []
    got, failures = window_embeddings(backbone, [*paths, str(broken)], 3, 2, cache, log=lines.append)
    assert list(failures) == [str(broken)] and got[-1] is None
    assert all(e.shape == (3, 8) and e.dtype == np.float32 for e in got[:-1])
    expected = Classifier(backbone).window_outputs(track_features(paths[0], TINY_FRONTEND, 3), "embedding")
    np.testing.assert_array_equal(got[0], expected)
    stored = sorted((cache / "tiny-backbone_1-3").glob("*.npy"))
    assert len(stored) == len(paths)
    # A second run reads the cache: a copy under another name is the same content, and a
    # cached file is returned as stored, not recomputed.
    copy = shutil.copy(paths[0], tmp_path / "renamed.mp3")
    np.save(stored[0], np.full((3, 8), 7.0, np.float32))
    lines.clear()
    again, failures = window_embeddings(backbone, [*paths, str(copy)], 3, 0, cache, log=lines.append)
    assert not failures and not lines  # nothing to compute
    assert any((e == 7.0).all() for e in again)
    np.testing.assert_array_equal(again[-1], again[0])
    # Another placement is another cache folder.
    window_embeddings(backbone, paths[:1], None, 0, cache, log=lines.append)
    assert (cache / "tiny-backbone_1-all").is_dir()


@pytest.mark.parametrize("n_labels", [2, 3])
def test_fitted_head_folds_the_standardisation_into_its_weights(n_labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (n_labels, 6)) + np.linspace(0, 50, 6)  # features far from zero mean, unit scale
    tracks = [centres[k % n_labels] + rng.normal(0, 2, (5, 6)) * np.linspace(0.1, 10, 6) for k in range(12 * n_labels)]
    targets = [k % n_labels for k in range(len(tracks))]
    head = fit_head(tracks, targets, n_labels, c=0.5)
    assert head.weights.shape == (6, n_labels) and head.bias.shape == (n_labels,) and head.converged
    x = np.concatenate(tracks)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=3000))
    reference.fit(x, np.repeat(targets, 5))
    np.testing.assert_allclose(head.window_probabilities(x), reference.predict_proba(x), atol=1e-5)
    # The mean vote over each track's windows.
    verdicts = head.predict(tracks, [f"L{k}" for k in range(n_labels)])
    assert np.mean([v.top == f"L{t}" for v, t in zip(verdicts, targets, strict=True)]) > 0.9
    with pytest.raises(ValueError, match="every label"):
        fit_head(tracks[:1], targets[:1], n_labels)


def test_the_head_path_imports_no_torch():
    code = (
        "import sys; import training.pipelines.retrain, training.pipelines.retrain_head, training.models.personal_head; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
