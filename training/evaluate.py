"""Metrics of a genre model on labelled tracks, and their plots.

`track_metrics` is pure numpy so it can be checked on cases with a known answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def track_metrics(
    true: Sequence[str],
    predicted: Sequence[str],
    labels: Sequence[str],
    window_correct: int | None = None,
    window_total: int | None = None,
    n_skipped: int = 0,
) -> dict[str, Any]:
    """Track-level metrics, as written to ``metrics.json``.

    true, predicted: one label per evaluated track. labels: the model's labels (row and column
    order of `confusion`). window_correct/window_total: counts for `window_accuracy`.
    Balanced accuracy and macro-F1 average over labels that have true tracks.
    """
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, predicted):
        confusion[index[t], index[p]] += 1
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    tp = np.diag(confusion)
    precision = np.divide(tp, predicted_count, out=np.zeros(len(labels)), where=predicted_count > 0)
    recall = np.divide(tp, support, out=np.zeros(len(labels)), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(labels)), where=denom > 0)
    present = support > 0
    n = int(confusion.sum())
    return {
        "track_accuracy": float(tp.sum() / n) if n else 0.0,
        "window_accuracy": float(window_correct / window_total) if window_total else None,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n_tracks": n,
        "n_skipped": int(n_skipped),
        "labels": list(labels),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": confusion.tolist(),
    }


def metrics_from_probs(
    track_probs: Sequence[np.ndarray], true: Sequence[str], labels: Sequence[str], sources: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics from per-track window probabilities (each (n_windows, n_labels)), mean vote.

    Tracks whose true label is not in `labels` are skipped and counted in ``n_skipped``.
    With `sources`, a ``per_source`` breakdown is added.
    """
    known = [i for i, t in enumerate(true) if t in labels]
    preds = [labels[int(track_probs[i].mean(axis=0).argmax())] for i in known]
    truths = [true[i] for i in known]
    win_correct = sum(int((track_probs[i].argmax(axis=1) == labels.index(true[i])).sum()) for i in known)
    win_total = sum(track_probs[i].shape[0] for i in known)
    result = track_metrics(truths, preds, labels, win_correct, win_total, n_skipped=len(true) - len(known))
    if sources is not None and len(set(sources)) > 1:
        result["per_source"] = {}
        for source in sorted(set(sources)):
            pick = [i for i in known if sources[i] == source]
            sub = metrics_from_probs([track_probs[i] for i in pick], [true[i] for i in pick], labels)
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

    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(max(5.0, 1 + 0.6 * len(labels)), max(3.5, 0.8 + 0.55 * len(labels))))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
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
