"""Metrics of a genre model on labelled tracks, and their plots.

`track_metrics` is checked on cases with a known answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genre_model import vote

# The evaluation figures a model file carries in its metadata (the full metrics stay in metrics.json).
CARD_KEYS = (
    "protocol",
    "track_accuracy",
    "balanced_accuracy",
    "macro_f1",
    "n_tracks",
    "per_source",
    "per_class",
    "written",
)


def card_metrics(metrics: dict) -> dict:
    """The figures of `metrics` that go into a model file's card."""
    return {k: metrics[k] for k in CARD_KEYS if k in metrics}


Truth = str | Collection[str]  # a track's label, or the set of labels it may carry


def as_set(truth: Truth) -> frozenset[str]:
    return frozenset([truth]) if isinstance(truth, str) else frozenset(truth)


def track_metrics(
    true: Sequence[Truth],
    predicted: Sequence[str],
    labels: Sequence[str],
    window_correct: int | None = None,
    window_total: int | None = None,
    n_skipped: int = 0,
) -> dict[str, Any]:
    """Track-level metrics, as written to ``metrics.json``.

    true: per evaluated track its label, or the set of labels it may carry (a track is right when
    its predicted label is in its set); predicted: one label per track. labels: the model's labels
    (row and column order of `confusion`). Per label: recall on the tracks whose set is that label
    alone (``support``), precision over every track predicted as it (right when the label is in
    the track's set); balanced accuracy and macro-F1 average over labels with support; the
    confusion counts single-label tracks only (rows true, columns predicted); ``n_set_tracks``:
    tracks with several labels. window_correct/window_total: counts for `window_accuracy`.
    """
    labels = list(labels)
    index = {label: k for k, label in enumerate(labels)}
    sets = [as_set(t) for t in true]
    n = len(sets)
    right = np.array([p in s for p, s in zip(predicted, sets, strict=True)], dtype=bool)
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    for p, s in zip(predicted, sets, strict=True):
        if len(s) == 1 and next(iter(s)) in index:
            confusion[index[next(iter(s))], index[p]] += 1
    support = confusion.sum(axis=1)
    hits = np.zeros(len(labels))  # predicted as the label and the label in the set
    called = np.zeros(len(labels))  # predicted as the label
    for p, ok in zip(predicted, right, strict=True):
        called[index[p]] += 1
        hits[index[p]] += ok
    recall = np.divide(np.diag(confusion), support, out=np.zeros(len(labels)), where=support > 0)
    precision = np.divide(hits, called, out=np.zeros(len(labels)), where=called > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(labels)), where=precision + recall > 0)
    present = support > 0
    return {
        "track_accuracy": float(right.mean()) if n else 0.0,
        "window_accuracy": float(window_correct / window_total) if window_total else None,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n_tracks": n,
        "n_set_tracks": sum(len(s) > 1 for s in sets),
        "n_skipped": int(n_skipped),
        "labels": labels,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "predicted": int(called[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": confusion.tolist(),
    }


def metrics_from_probs(
    track_probs: Sequence[np.ndarray],
    true: Sequence[Truth],
    labels: Sequence[str],
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics from per-track window probabilities (each (n_windows, n_labels)), tracks judged by `vote`.

    true: each track's label or set of labels (`track_metrics`). Tracks none of whose labels is in
    `labels` are skipped and counted in ``n_skipped``. With `sources`, a ``per_source`` breakdown is added.
    """
    labels = list(labels)
    sets = [as_set(t) & set(labels) for t in true]
    known = [i for i, s in enumerate(sets) if s]
    preds = [vote(track_probs[i], labels).top for i in known]
    truths = [sets[i] for i in known]
    win_correct = sum(int(np.isin(np.array(labels)[track_probs[i].argmax(axis=1)], list(sets[i])).sum()) for i in known)
    win_total = sum(track_probs[i].shape[0] for i in known)
    result = track_metrics(truths, preds, labels, win_correct, win_total, n_skipped=len(true) - len(known))
    if sources is not None and len(set(sources)) > 1:
        result["per_source"] = {}
        for source in sorted(set(sources)):
            pick = [i for i in known if sources[i] == source]
            sub = metrics_from_probs([track_probs[i] for i in pick], [sets[i] for i in pick], labels)
            result["per_source"][source] = {
                k: sub[k] for k in ("track_accuracy", "balanced_accuracy", "macro_f1", "n_tracks")
            }
    return result


def write_metrics(metrics: dict[str, Any], out_dir: str | os.PathLike[str], title: str = "") -> None:
    """Write ``metrics.json`` and ``confusion.png`` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_confusion(np.array(metrics["confusion"]), metrics["labels"], out / "confusion.png", title)


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], path: str | os.PathLike[str], title: str = "") -> None:
    """Confusion matrix (rows: true, columns: predicted), each row normalised, counts written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(max(5.0, 1 + 0.6 * len(labels)), max(3.5, 0.8 + 0.55 * len(labels))))
    shown = ConfusionMatrixDisplay(share, display_labels=list(labels)).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45, im_kw={"vmin": 0, "vmax": 1}
    )
    for (i, j), n in np.ndenumerate(confusion):  # colour by the row's share, write the count
        shown.text_[i, j].set_text(str(n) if n else "")
        shown.text_[i, j].set_fontsize(8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(history: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Learning curves: training loss and validation accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    if any("valid_loss" in h for h in history):
        ax1.plot(epochs, [h.get("valid_loss", np.nan) for h in history], label="valid")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    keys = [k for k in ("valid_track_accuracy", "valid_window_accuracy") if any(k in h for h in history)]
    for key in keys:
        ax2.plot(epochs, [h.get(key, np.nan) for h in history], label=key.replace("valid_", ""))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy")
    if keys:
        ax2.legend()
    else:
        ax2.set_title("no validation set (trained on everything)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
