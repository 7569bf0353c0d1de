"""A personal genre head on a model's ``embedding`` output: no torch, seconds to train.

A base model that exports its penultimate features as a second output, ``embedding``
(batch, D), carries everything a new vocabulary needs: `window_embeddings` runs the base model
on each file's windows once (cached per file content), `fit_head` fits a logistic regression
on the window rows with scikit-learn, and `append_head` writes the base graph with its old
output layer replaced by the new one (MatMul + Add + Softmax on ``embedding``) using the `onnx`
package. The new file keeps the ``embedding`` output, so it can in turn be the base of another
head, and its metadata names the model whose embedding it reads, so that head reuses the cache.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genre_model import Classifier, ModelInfo, TrackPrediction, vote
from training.atomic import replaced_atomically
from training.errors import BackboneError, ExportError, NoEmbeddingError
from training.features.cache import Digests, cached_window_outputs

if TYPE_CHECKING:
    import onnx

EMBEDDING_OUTPUT = "embedding"
PROBABILITIES_OUTPUT = "probabilities"
# Max abs difference of probabilities, onnxruntime on the written file vs numpy on its embedding.
HEAD_PARITY_TOLERANCE = 1e-5
# Inverse regularisation of the logistic regression on standardised embeddings
# (benchmarks/musicnn_cv.py's default for its window-embedding head).
HEAD_C = 0.01
# Names of the appended tensors; a base graph that uses them already is refused.
_HEAD_NAMES = ("genreclass_head_weight", "genreclass_head_bias", "genreclass_head_matmul", "genreclass_head_logits")


def embedding_source(info: ModelInfo) -> str:
    """Identity of the network that computes `info`'s model's embedding: the base model's id for a
    file written by `append_head` (its embedding is the base's, unchanged), else its own id."""
    return str(info.training.get("embedding_of") or info.model_id)


def has_embedding(model_path: str | os.PathLike[str]) -> bool:
    """Whether the genreclass model at `model_path` has an ``embedding`` output (raises `ModelError`)."""
    return EMBEDDING_OUTPUT in Classifier(model_path, device="cpu").output_names


def window_embeddings(
    classifier_path: str | os.PathLike[str],
    paths: Sequence[str],
    max_windows: int | None,
    workers: int,
    cache_dir: str | os.PathLike[str],
    digests: Digests | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """The model's ``embedding`` of each file's windows, placed as the plugin places them.

    max_windows: windows per file (`genre_model.window_starts`; None: every whole window).
    workers: decoding processes (<= 1: in this process). digests: {path: content hash}, filled
    in as needed. Files are cached as ``CACHE/<embedding source>-<max_windows>/<content
    hash>.npy`` and never recomputed. Returns one float32 (n_windows_i, D) array per path (None
    for a file that could not be read) and {path: reason} for those. Raises `NoEmbeddingError`
    when the model has no ``embedding`` output, `ModelError` when it is not a genreclass model.
    """
    model = Classifier(classifier_path, device=device)
    if EMBEDDING_OUTPUT not in model.output_names:
        raise NoEmbeddingError(
            f"{classifier_path}: no '{EMBEDDING_OUTPUT}' output (it has {', '.join(model.output_names)}); "
            "a head can only be trained on a model that exports its embedding"
        )
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", embedding_source(model.info))
    folder = Path(cache_dir) / f"{safe}-{max_windows or 'all'}"
    return cached_window_outputs(
        paths, folder, model.info.frontend, max_windows,
        lambda windows: model.window_outputs(windows, EMBEDDING_OUTPUT),
        workers, digests, what=f"embeddings ({model.info.model_id})", log=log,
    )  # fmt: skip


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, n_labels) logits, float32."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LinearHead:
    """``softmax(embedding @ weights + bias)``, the standardisation of the embedding folded in.

    weights: (D, n_labels) float32. bias: (n_labels,) float32. converged: whether the solver
    met its tolerance within its iterations (`fit_head`).
    """

    weights: np.ndarray
    bias: np.ndarray
    converged: bool = True

    def window_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities (n, n_labels) of window embeddings (n, D)."""
        return softmax(embeddings.astype(np.float64) @ self.weights + self.bias)

    def predict(self, tracks: Sequence[np.ndarray], labels: Sequence[str]) -> list[TrackPrediction]:
        """One verdict per track from its window embeddings (n_windows_i, D): the mean vote."""
        return [vote(self.window_probabilities(e), labels, "mean") for e in tracks]


def fit_head(
    embeddings: Sequence[np.ndarray],
    targets: Sequence[int | Sequence[int]],
    n_labels: int,
    c: float = HEAD_C,
    max_iter: int = 3000,
) -> LinearHead:
    """Logistic regression on window rows: every window of track i, (n_windows_i, D), has label
    index ``targets[i]``, or may carry any of the label indices ``targets[i]`` (its set).
    Classes are weighted to balance (window counts, a set row counting 1/|S| for each of its
    labels), features standardised.

    A set track's windows enter once per label of its set, each copy weighted 1/|S|: the head
    then minimises the mean cross-entropy over the set, which pushes probability towards the
    set's labels as a whole and away from every label outside it, exactly as a single-label
    track of any of them would, at 1/|S| of the weight. This is the uniform start of the EM-style
    disambiguation of partial labels (reweighting each copy by the model's own p(y | x) within S);
    it is chosen over EM because it stays one convex, deterministic fit (seconds per fold in the
    cross-validation), and because library tags (lastgenre's, AllMusic's) are per artist or album
    and noisy, where letting a model confirm its own guess overfits. The partial-label loss of the
    torch loop (-log of the set's probability) is the full-EM limit of the same idea.

    Raises `ValueError` when a label in ``range(n_labels)`` has no window.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    sets = [(int(t),) if isinstance(t, int | np.integer) else tuple(sorted(set(int(k) for k in t))) for t in targets]
    parts = [np.asarray(e, dtype=np.float64) for e in embeddings]
    x = np.concatenate([e for e, s in zip(parts, sets, strict=True) for _ in s])
    y = np.concatenate([np.full(len(e), k, dtype=np.int64) for e, s in zip(parts, sets, strict=True) for k in s])
    share = np.concatenate([np.full(len(e), 1.0 / len(s)) for e, s in zip(parts, sets, strict=True) for _ in s])
    absent = sorted(set(range(n_labels)) - set(y.tolist()))
    if n_labels < 2 or absent:
        raise ValueError(
            f"a head needs windows of at least 2 labels and of every label; none for label indices {absent}"
        )
    # 'balanced' as scikit-learn defines it (n_rows / (n_labels * rows of the label)), with rows counted by their share.
    mass = np.bincount(y, weights=share, minlength=n_labels)
    weight = share * (share.sum() / (n_labels * mass))[y]
    scaler = StandardScaler().fit(np.concatenate(parts))
    # One BLAS/OpenMP thread: a few thousand rows of 200 are too small to share, and on a busy 2-core
    # machine two threads made a fit 9x slower (benchmarks/retrain_cv.py, docs/BENCHMARKS.md).
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as `converged`, not on stderr
        model = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(x), y, sample_weight=weight)
    coef, intercept = model.coef_, model.intercept_
    if n_labels == 2:  # one row for P(label 1): as a softmax, label 0's logit is 0
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    # coef @ ((x - mean) / scale) + b  ==  x @ (coef / scale).T + (b - coef @ (mean / scale))
    weights = (coef / scaler.scale_).T
    bias = intercept - coef @ (scaler.mean_ / scaler.scale_)
    converged = bool(np.max(model.n_iter_) < max_iter)
    return LinearHead(weights.astype(np.float32), bias.astype(np.float32), converged)


def append_head(
    base_model_path: str | os.PathLike[str],
    weights: np.ndarray,
    bias: np.ndarray,
    info: ModelInfo,
    out_path: str | os.PathLike[str],
    parity_windows: np.ndarray | None = None,
) -> dict[str, float | int]:
    """Write `base_model_path` with a new output layer on its ``embedding`` as `out_path`.

    weights (D, n_labels), bias (n_labels,): the head; `info` (labels in the head's column order,
    name, version, training summary) becomes the file's metadata, with ``embedding_of`` added.
    The base's old probabilities and every node only they needed are dropped; the outputs are
    ``probabilities`` (batch, n_labels), then ``embedding`` (batch, D), unchanged. With
    `parity_windows` (n, n_mels, n_frames) real log-mel windows, the written file's
    probabilities must equal ``softmax(embedding @ weights + bias)`` and its embedding the base's
    within `HEAD_PARITY_TOLERANCE`, else `ExportError`. The file is written atomically.
    Returns {"max_abs_diff", "n_windows"}. Raises `NoEmbeddingError` without an ``embedding``.
    """
    import onnx  # here, not at import: `has_embedding` and the embeddings need no onnx
    from onnx import TensorProto, helper, numpy_helper

    from training.export.metadata import read_info, set_info

    out_path = Path(out_path)
    proto = onnx.load(str(base_model_path))
    graph = proto.graph
    outputs = {o.name: o for o in graph.output}
    if EMBEDDING_OUTPUT not in outputs:
        raise NoEmbeddingError(f"{base_model_path}: no '{EMBEDDING_OUTPUT}' output (it has {', '.join(outputs)})")
    embedding = outputs[EMBEDDING_OUTPUT]
    dims = embedding.type.tensor_type.shape.dim
    width = dims[1].dim_value if len(dims) == 2 else 0
    if weights.ndim != 2 or (width and weights.shape[0] != width) or bias.shape != (weights.shape[1],):
        raise ValueError(f"head weights {weights.shape}, bias {bias.shape} do not fit an embedding of width {width}")
    if weights.shape[1] != len(info.labels):
        raise ValueError(f"head has {weights.shape[1]} outputs for {len(info.labels)} labels")
    _prune(graph, {EMBEDDING_OUTPUT})
    taken = {name for node in graph.node for name in node.output} | {t.name for t in graph.initializer}
    clash = taken & {*_HEAD_NAMES, PROBABILITIES_OUTPUT}
    if clash:
        raise BackboneError(f"{base_model_path}: its embedding needs tensors named {sorted(clash)}; cannot add a head")
    w_name, b_name, mm_name, logits_name = _HEAD_NAMES
    graph.initializer.extend(
        [
            numpy_helper.from_array(weights.astype(np.float32), w_name),
            numpy_helper.from_array(bias.astype(np.float32), b_name),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("MatMul", [EMBEDDING_OUTPUT, w_name], [mm_name], name="genreclass_head/matmul"),
            helper.make_node("Add", [mm_name, b_name], [logits_name], name="genreclass_head/add"),
            helper.make_node("Softmax", [logits_name], [PROBABILITIES_OUTPUT], axis=1, name="genreclass_head/softmax"),
        ]
    )
    batch = (dims[0].dim_param or dims[0].dim_value) if dims else "batch"
    probabilities = helper.make_tensor_value_info(PROBABILITIES_OUTPUT, TensorProto.FLOAT, [batch, weights.shape[1]])
    kept_embedding = onnx.ValueInfoProto()
    kept_embedding.CopyFrom(embedding)
    del graph.output[:]
    graph.output.extend([probabilities, kept_embedding])
    base_info = read_info(proto, str(base_model_path))
    source = embedding_source(base_info) if base_info else str(base_model_path)
    info = dataclasses.replace(info, training={**info.training, "embedding_of": source})
    set_info(proto, info)
    onnx.checker.check_model(proto)
    with replaced_atomically(out_path) as tmp:
        onnx.save(proto, str(tmp))
        result = {"max_abs_diff": 0.0, "n_windows": 0}
        if parity_windows is not None and len(parity_windows):
            result = _check_parity(tmp, base_model_path, LinearHead(weights, bias), parity_windows)
    return result


def _prune(graph: onnx.GraphProto, keep: set[str]) -> None:
    """Keep only the nodes, initialisers and value infos the tensors `keep` are computed from."""
    needed = set(keep)
    kept = []
    for node in reversed(graph.node):  # ONNX graphs are stored in topological order
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
            needed.update(_outer_names(node))
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    produced = {name for node in kept for name in node.output}
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    sparse = [t for t in graph.sparse_initializer if t.values.name in needed]
    del graph.sparse_initializer[:]
    graph.sparse_initializer.extend(sparse)
    initialised = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised or i.name in needed]
    del graph.input[:]
    graph.input.extend(inputs)
    infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def _outer_names(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If, Loop, Scan bodies) read, which may come from the outer graph."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in sub.node:
                names.update(name for name in inner.input if name)
                names.update(_outer_names(inner))
    return names


def _check_parity(
    path: Path, base_path: str | os.PathLike[str], head: LinearHead, windows: np.ndarray
) -> dict[str, float | int]:
    new = Classifier(path, device="cpu")
    got = new.window_probabilities(windows)
    embedding = new.window_outputs(windows, EMBEDDING_OUTPUT)
    base_embedding = Classifier(base_path, device="cpu").window_outputs(windows, EMBEDDING_OUTPUT)
    diff = float(np.abs(got - head.window_probabilities(embedding)).max())
    drift = float(np.abs(embedding - base_embedding).max())
    if diff > HEAD_PARITY_TOLERANCE or drift > HEAD_PARITY_TOLERANCE:
        raise ExportError(
            f"{path}: onnxruntime differs from the numpy head by {diff:.2e} and from the base embedding by "
            f"{drift:.2e} (> {HEAD_PARITY_TOLERANCE:.0e}); not written"
        )
    return {"max_abs_diff": diff, "n_windows": int(len(windows))}
