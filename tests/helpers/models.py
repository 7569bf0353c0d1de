"""Tiny genreclass models built with onnx.helper: no torch, known answers.

`build_tiny_model` averages each mel band over time and scores "Low" by the level of the lower
half of the bands against the upper half ("High" the opposite), so a 200 Hz tone is Low and a
5 kHz tone is High; `tiny_model_probabilities` is the same arithmetic in numpy, what onnxruntime
must reproduce. Enough to test the runtime and the plugin on real decoded audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from genre_model import FrontendConfig, ModelInfo
from genre_model.model_file import METADATA_KEY

TINY_FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, fmax=8000.0, window_seconds=1.0)


def _tiny_weights(n_mels: int, n_out: int) -> np.ndarray:
    """(n_mels, n_out): output 0 weighs the lower half of the bands up and the upper half down,
    output 1 the opposite; any further outputs are zero."""
    weights = np.zeros((n_mels, n_out), dtype=np.float32)
    weights[: n_mels // 2, 0], weights[n_mels // 2 :, 0] = 0.02, -0.02
    if n_out > 1:
        weights[:, 1] = -weights[:, 0]
    return weights


def tiny_model_probabilities(windows: np.ndarray) -> np.ndarray:
    """What `build_tiny_model`'s default graph computes for log-mel windows (n, n_mels, n_frames):
    (n, 2) probabilities of Low and High, by numpy."""
    logits = windows.astype(np.float64).mean(axis=2) @ _tiny_weights(windows.shape[1], 2)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _input(frontend: FrontendConfig) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", frontend.n_mels, frontend.n_frames])


def _save(graph: onnx.GraphProto, metadata: str, path: Path) -> Path:
    """The graph as a model file carrying genreclass's metadata entry."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata
    onnx.save(model, str(path))
    return path


def build_tiny_model(
    path: Path,
    labels: tuple[str, ...] = ("Low", "High"),
    frontend: FrontendConfig = TINY_FRONTEND,
    name: str = "tiny",
    version: str = "1",
    metadata: str | None = None,
    n_outputs: int | None = None,
) -> Path:
    """Write the model; `metadata` overrides the JSON entry, `n_outputs` the output width."""
    n_out = n_outputs or len(labels)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["band_mean"], keepdims=0),
            helper.make_node("MatMul", ["band_mean", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [_input(frontend)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[
            numpy_helper.from_array(_tiny_weights(frontend.n_mels, n_out), "w"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
        ],
    )
    info = ModelInfo(name, version, tuple(labels), frontend, {"tracks": 0}, {"track_accuracy": 1.0})
    return _save(graph, metadata if metadata is not None else info.to_json(), path)


def build_tiny_backbone(
    path: Path,
    labels: tuple[str, ...] = ("Low", "High"),
    frontend: FrontendConfig = TINY_FRONTEND,
    name: str = "tiny-backbone",
    version: str = "1",
    embedding_width: int = 8,
) -> Path:
    """A model with two outputs like the musicnn genre model: ``probabilities``, then ``embedding``.

    embedding (batch, `embedding_width`): the mean level of each of `embedding_width` groups of
    adjacent mel bands, over time, in tens of dB, so low, bright and broadband sounds land apart.
    probabilities: the old output layer, on a branch of its own (MatMul, Relu, Softmax) that
    `append_head` must drop.
    """
    group = frontend.n_mels // embedding_width
    pool = np.zeros((frontend.n_mels, embedding_width), dtype=np.float32)
    for k in range(embedding_width):
        pool[k * group : (k + 1) * group, k] = 1.0 / (10 * group)
    old = np.random.default_rng(0).normal(0, 0.05, (frontend.n_mels, len(labels))).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["band_mean"], keepdims=0),
            helper.make_node("MatMul", ["band_mean", "pool"], ["embedding"]),
            helper.make_node("MatMul", ["band_mean", "old_w"], ["old_hidden"]),
            helper.make_node("Relu", ["old_hidden"], ["old_logits"]),
            helper.make_node("Softmax", ["old_logits"], ["probabilities"], axis=1),
        ],
        "tiny-backbone",
        [_input(frontend)],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(labels)]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", embedding_width]),
        ],
        initializer=[
            numpy_helper.from_array(pool, "pool"),
            numpy_helper.from_array(old, "old_w"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
        ],
    )
    info = ModelInfo(name, version, tuple(labels), frontend, {"arch": "tiny-backbone"}, {})
    return _save(graph, info.to_json(), path)


def build_failing_model(path: Path, frontend: FrontendConfig = TINY_FRONTEND) -> Path:
    """A model that loads and declares the right shapes, but fails whenever it runs: it gathers
    mel band 1000 of `frontend.n_mels` (an index only checked at run time)."""
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["input", "band"], ["picked"], axis=1),
            helper.make_node("ReduceMean", ["picked", "axes"], ["level"], keepdims=0),
            helper.make_node("Concat", ["level", "level"], ["logits"], axis=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "failing",
        [_input(frontend)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(np.array([1000], dtype=np.int64), "band"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
        ],
    )
    return _save(graph, ModelInfo("failing", "1", ("Low", "High"), frontend, {}, {}).to_json(), path)
