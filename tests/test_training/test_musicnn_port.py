"""The torch port of musicnn reproduces TensorFlow's outputs stored in training/pretrained/msd_reference.npz.

The references were written by tools/musicnn_convert/convert.py from musicnn 0.1.0's own graph and
checkpoints; these tests need neither TensorFlow nor the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.markers import SHARED_DATA, needs_shared_data
from reference_features import load_audio, musicnn_log_mel, musicnn_patch

from training.export.musicnn import INPUT_NAME, export_musicnn_onnx, tagger_for_export
from training.models.musicnn.network import PRETRAINED, PRETRAINED_DIR, load_pretrained, pretrained_labels

PROBABILITY_TOLERANCE = 1e-4  # max abs difference of the 50 tag probabilities, torch vs TF


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(PRETRAINED_DIR / "msd_reference.npz") as f:
        return dict(f)


@pytest.fixture(scope="module", params=PRETRAINED)
def network(request) -> tuple[str, torch.nn.Module]:
    return request.param, load_pretrained(request.param)


def _run(model: torch.nn.Module, patches: np.ndarray) -> dict[str, np.ndarray]:
    # Reference patches are in musicnn's (n, 187 frames, 96 bands); the port takes (n, 96, 187).
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 2, 1))))
    return {k: v.numpy() for k, v in out._asdict().items()}


def _assert_close(name: str, got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> None:
    # Relative to the feature's own scale: pooled mid-end features reach tens, probabilities stay <= 1.
    scale = max(1.0, float(np.abs(want).max()))
    diff = float(np.abs(got - want).max())
    assert got.shape == want.shape, name
    assert diff <= rtol * scale, f"{name}: max abs diff {diff:.2e} > {rtol * scale:.2e}"


def test_synthetic_patches_match_tensorflow(network, reference) -> None:
    name, model = network
    out = _run(model, reference["synthetic_patches"])
    probs = reference[f"{name}_synthetic_probabilities"]
    assert np.abs(out["probabilities"] - probs).max() < PROBABILITY_TOLERANCE
    for key in ("logits", "embedding", "max_pool", "mean_pool"):
        if f"{name}_synthetic_{key}" in reference:
            _assert_close(f"{name} {key}", out[key], reference[f"{name}_synthetic_{key}"])


def test_labels_travel_with_the_weights(network, reference) -> None:
    name, _ = network
    labels = pretrained_labels(name)
    assert labels == list(reference["labels"])
    assert len(labels) == 50 and labels[:3] == ["rock", "pop", "alternative"]


def test_rejects_tensorflow_layout() -> None:
    model = load_pretrained("msd_musicnn")
    with pytest.raises(ValueError, match="96"):
        model(torch.zeros(1, 187, 96))


def test_unknown_network_name_is_refused() -> None:
    with pytest.raises(ValueError, match="msd_musicnn"):
        load_pretrained("mtt_musicnn")


@pytest.mark.slow
@needs_shared_data
def test_real_patches_match_tensorflow(network, reference) -> None:
    name, model = network
    patches = []
    for rel, start in zip(reference["real_paths"], reference["real_start_frames"], strict=True):
        log_mel = musicnn_log_mel(load_audio(str(SHARED_DATA / str(rel))))
        patches.append(musicnn_patch(log_mel, int(start)).T)
    patches = np.stack(patches)
    # Decoding or resampling drift would show here first, not as a network mismatch.
    np.testing.assert_allclose(patches.mean(axis=(1, 2)), reference["real_patch_mean"], rtol=1e-4)
    np.testing.assert_allclose(patches.std(axis=(1, 2)), reference["real_patch_std"], rtol=1e-4)
    out = _run(model, patches)
    assert np.abs(out["probabilities"] - reference[f"{name}_real_probabilities"]).max() < PROBABILITY_TOLERANCE
    _assert_close(f"{name} embedding", out["embedding"], reference[f"{name}_real_embedding"])


@pytest.mark.parametrize("name", PRETRAINED)
def test_onnx_export_matches_torch(name: str, reference, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    ort.set_default_logger_severity(3)
    path = export_musicnn_onnx(name, tmp_path / f"{name}.onnx")
    patches = np.ascontiguousarray(reference["synthetic_patches"].transpose(0, 2, 1))  # batch 8, exported with 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, embedding = session.run(None, {INPUT_NAME: patches})
    with torch.no_grad():
        want_probs, want_embedding = tagger_for_export(load_pretrained(name))(torch.from_numpy(patches))
    assert np.abs(probs - want_probs.numpy()).max() < 1e-4
    _assert_close(f"{name} onnx embedding", embedding, want_embedding.numpy())
