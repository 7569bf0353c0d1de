"""Retrain on a personal collection: the training methods, and one train/held-out run compared with the base.

The methods (`METHODS`, `RetrainJob`, `Trained`) serve `beet genreclass-train`, whose run
(`training.pipelines.retrain_estimated`) estimates by cross-validation over artists and then trains
on every track; `retrain` here is one run on given train and held-out tracks, which
`benchmarks/learning_curve.py` calls fold by fold. How the new model is trained depends on the base model
(`training_method`): a base that exports its ``embedding`` gets a new logistic-regression head
on it (`training.pipelines.retrain_head`: numpy, scikit-learn and onnx, no torch); a CNN/CRNN base is
fine-tuned with torch from the weights in its `.onnx` (`training.pipelines.retrain_network`), and
``from_scratch`` trains one from random weights. Either way the held-out artists' tracks are
classified by the new model and by the base model with onnxruntime, windows placed exactly as
the plugin places them, so the two accuracies printed side by side are comparable.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genre_model import AudioDecodeError, Classifier, ModelInfo, track_features, vote
from genre_model.classifier import bundled_model_path
from training.atomic import replaced_atomically
from training.data.genres import shared_label_indices
from training.data.splits import group_holdout
from training.data.tracks import Track
from training.engine.config import TrainConfig
from training.errors import NotEnoughData
from training.evaluation.metrics import metrics_from_probs, plot_confusion, plot_history
from training.models.personal_head import HEAD_C

# Where torch retraining on a personal library departs from `TrainConfig`'s defaults: the last
# epoch is kept, since the held-out artists are the test set and never choose an epoch; labels
# are sampled by the square root of their counts. Fine-tuning trains the pretrained front end
# and conv blocks at a tenth of the new head's rate, so a small library adapts the features
# without overwriting them.
PERSONAL_SETTINGS: dict[str, Any] = {"class_balance": 0.5, "keep_best": False, "patience": 0}
FINE_TUNE_SETTINGS: dict[str, Any] = {**PERSONAL_SETTINGS, "backbone_lr_scale": 0.1}


@dataclasses.dataclass
class RetrainOptions:
    """How `retrain` trains.

    base_model: `.onnx` to start from and to compare against (None: the bundled model).
    from_scratch: random initial weights (the base model is still the comparison).
    epochs, lr, backbone_lr_scale, class_balance, device: torch training only; None takes
        `FINE_TUNE_SETTINGS` (or `PERSONAL_SETTINGS` from scratch), else `TrainConfig`'s default.
    head_windows: windows per training track whose embeddings a head learns from, placed as the
        plugin places them (None: every whole window). head_c: the head's inverse regularisation.
    """

    epochs: int = TrainConfig.epochs
    from_scratch: bool = False
    base_model: str | None = None
    lr: float | None = None
    backbone_lr_scale: float | None = None
    class_balance: float | None = None
    seed: int = TrainConfig.seed
    workers: int = 2
    device: str = TrainConfig.device
    name: str = "genreclass-personal"
    head_windows: int | None = 8
    head_c: float = HEAD_C
    version: str | None = None  # None: the time training ends, YYYYmmdd-HHMMSS

    def train_config(self, **architecture: Any) -> TrainConfig:
        """The `TrainConfig` of torch retraining: `architecture` (arch, channels, ...: the base
        model's), the settings of this method, and the options given."""
        given = {"lr": self.lr, "backbone_lr_scale": self.backbone_lr_scale, "class_balance": self.class_balance}
        return TrainConfig(
            **architecture,
            **(PERSONAL_SETTINGS if self.from_scratch else FINE_TUNE_SETTINGS),
            epochs=self.epochs,
            seed=self.seed,
            device=self.device,
        ).with_overrides({k: v for k, v in given.items() if v is not None})


@dataclasses.dataclass
class RetrainResult:
    model_path: Path
    info: ModelInfo
    card: dict[str, Any]  # also written to `card_path`
    card_path: Path


def split_by_artist(
    tracks: Sequence[Track], labels: Sequence[str], valid_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Track], list[Track]]:
    """`training.data.splits.group_holdout` on a library's tracks, whose groups are album artists."""
    return group_holdout(tracks, valid_fraction, seed, labels)


def plural(n: int, noun: str) -> str:
    """'1 track', '2 tracks', '1 album artist'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def support_text(counts: dict[str, int], labels: Sequence[str]) -> str:
    """Tracks per genre in the order of `labels`: 'Blues 12, Rock 0'."""
    return ", ".join(f"{label} {counts.get(label, 0)}" for label in labels)


def compare_models(
    new: Classifier, base: Classifier, tracks: Sequence[Track], labels: Sequence[str], max_windows: int = 8
) -> dict[str, Any]:
    """Both models on the same held-out windows, decoded from the files as the plugin decodes them.

    Returns the new model's metrics on every held-out track and, on the tracks whose label
    the base model also has, both models' track accuracy with each model's vote taken over the
    shared labels only, so neither gains from having fewer genres to choose from (``new_full``:
    the new model choosing among all its labels, as it tags); ``skipped``: {path: reason} for
    the tracks that could not be decoded.
    """
    windows, truth, skipped = [], [], {}
    for t in tracks:
        try:
            windows.append(track_features(t.path, new.info.frontend, max_windows))
        except AudioDecodeError as exc:
            skipped[t.path] = exc.reason
            continue
        truth.append(labels.index(t.label))
    new_probs = [new.window_probabilities(w) for w in windows]
    metrics = metrics_from_probs(new_probs, [labels[k] for k in truth], list(labels))
    shared = shared_label_indices(labels, base.info.labels)
    pick = [k for k, target in enumerate(truth) if target in shared]
    result: dict[str, Any] = {"new": metrics, "shared_labels": [labels[i] for i in sorted(shared)], "skipped": skipped}
    if pick:
        new_cols, base_cols = (list(c) for c in zip(*sorted(shared.items()), strict=True))

        def accuracy(votes: list[np.ndarray], cols: list[int] | None) -> float:
            """Share of `pick` right; a vote (n_labels,) is read among `cols` (None: all, new order)."""
            hits = [
                (int(v.argmax()) if cols is None else new_cols[int(v[cols].argmax())]) == truth[k]
                for v, k in zip(votes, pick, strict=True)
            ]
            return float(np.mean(hits))

        new_votes = [vote_scores(new_probs[k], labels) for k in pick]
        base_votes = [vote_scores(base.window_probabilities(windows[k]), base.info.labels) for k in pick]
        result["on_shared"] = {
            "n_tracks": len(pick),
            "new_track_accuracy": accuracy(new_votes, new_cols),
            "base_track_accuracy": accuracy(base_votes, base_cols),
            "new_full_track_accuracy": accuracy(new_votes, None),
        }
    return result


def vote_scores(window_probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """`vote`'s score of each label, (n_labels,) in `labels`' order."""
    scores = dict(vote(window_probs, labels).genres)
    return np.array([scores[label] for label in labels])


def training_method(base_model: str | os.PathLike[str] | None, from_scratch: bool = False) -> str:
    """How `retrain` trains from `base_model` (None: the bundled model): ``"head"`` when the base
    exports an ``embedding`` (a logistic-regression head on it, no torch), else ``"fine-tune"``
    (torch, the base's conv blocks); ``"scratch"`` when asked. Raises `ModelError` for a bad file."""
    if from_scratch:
        return "scratch"
    from training.models.personal_head import has_embedding  # numpy and onnxruntime only

    return "head" if has_embedding(base_model or bundled_model_path()) else "fine-tune"


# The packages (import names) each method needs: the head needs neither torch nor matplotlib; all
# split with scikit-learn.
REQUIRED_PACKAGES: dict[str, tuple[str, ...]] = {
    "head": ("sklearn", "onnx"),
    "fine-tune": ("torch", "sklearn", "onnx", "matplotlib"),
    "scratch": ("torch", "sklearn", "onnx", "matplotlib"),
}


# Each training method: "module:function" taking a `RetrainJob` and returning `Trained`.
METHODS: dict[str, str] = {
    "head": "training.pipelines.retrain_head:train_head",
    "fine-tune": "training.pipelines.retrain_network:train_network",
    "scratch": "training.pipelines.retrain_network:train_network",
}


@dataclasses.dataclass(frozen=True)
class RetrainJob:
    """What a training method is given: the split tracks and labels, where to write the model,
    the options, the base model, a feature cache folder and a log."""

    train_tracks: Sequence[Track]
    valid_tracks: Sequence[Track]
    labels: Sequence[str]
    out_path: Path
    options: RetrainOptions
    base: Classifier
    cache_dir: str | os.PathLike[str]
    log: Callable[[str], None]


def retrain(
    train_tracks: Sequence[Track],
    valid_tracks: Sequence[Track],
    labels: Sequence[str],
    out_path: str | os.PathLike[str],
    options: RetrainOptions,
    cache_dir: str | os.PathLike[str],
    log: Callable[[str], None] = print,
) -> RetrainResult:
    """Train on `train_tracks`, export `out_path` (.onnx) and its model card, compare on `valid_tracks`.

    The method is `training_method`'s: a head on the base model's embedding, or torch training.
    cache_dir: where features (log-mel spectrograms or embeddings) are cached (content-addressed;
    safe to keep between runs).
    """
    started = time.time()
    out_path = Path(out_path)
    base = Classifier(options.base_model or bundled_model_path(), device="cpu")
    method = training_method(base.model_path, options.from_scratch)
    with replaced_atomically(out_path) as tmp_model:  # an interrupted run leaves no half-written model
        module, function = METHODS[method].split(":")
        train = getattr(importlib.import_module(module), function)  # imported only when used: torch or not
        trained = train(RetrainJob(train_tracks, valid_tracks, labels, tmp_model, options, base, cache_dir, log))
        comparison = compare_models(Classifier(tmp_model, device="cpu"), base, trained.valid, labels)
        for path, reason in comparison["skipped"].items():
            log(f"skipped {path}: {reason}")
        held_out = [t for t in trained.valid if t.path not in comparison["skipped"]]
        if not held_out:
            raise NotEnoughData("none of the held-out tracks could be decoded; nothing to check the new model on")
        split = split_summary(trained.train, held_out)
        new_metrics = comparison["new"]
        # Store the held-out figures in the file itself (metadata only), then move it into place.
        card_metrics = {
            "protocol": f"held-out album artists ({split['valid_artists']}), {trained.protocol}",
            **{k: new_metrics[k] for k in ("track_accuracy", "balanced_accuracy", "macro_f1", "n_tracks")},
        }
        if "on_shared" in comparison:
            card_metrics["base_model_on_shared_labels"] = comparison["on_shared"] | {"base_model": base.info.model_id}
        from training.export.metadata import update_metrics

        info = update_metrics(tmp_model, card_metrics, training_fields={"split": split})
    card = {"split": split, "held_out": comparison, "history": trained.history}
    result = write_card(out_path, info, labels, base.info, method, card, started)
    _plot(new_metrics, trained.history, labels, out_path.with_suffix(""), info.model_id, log)
    return result


def write_card(
    out_path: Path, info: ModelInfo, labels: Sequence[str], base: ModelInfo, method: str, fields: dict[str, Any],
    started: float,
) -> RetrainResult:  # fmt: skip
    """Write the retrained model's card, ``<out stem>.card.json``: what every card says (the model, its
    files, labels, base model, method, start, seconds since `started`) and the run's own `fields`."""
    stem = out_path.with_suffix("")
    card_path = stem.with_name(stem.name + ".card.json")
    card = {
        "model": info.model_id,
        "file": str(out_path),
        "card": str(card_path),
        "labels": list(labels),
        "base_model": base.model_id,
        "method": method,
        "start": info.training["start"],
        **fields,
        "seconds": round(time.time() - started, 1),
    }
    card_path.write_text(json.dumps(card, indent=1))
    return RetrainResult(out_path, info, card, card_path)


@dataclasses.dataclass
class Trained:
    """A model written by one of `retrain`'s methods: the tracks it used and how it learnt.

    train, valid: the decodable tracks of each side. history: per-epoch figures (empty for a
    head, which has no epochs). protocol: how the figures were taken, for the model card.
    """

    train: list[Track]
    valid: list[Track]
    history: list[dict[str, float]]
    protocol: str


def split_summary(train: Sequence[Track], valid: Sequence[Track]) -> dict[str, Any]:
    """The train/held-out split as the model card and the file's metadata record it."""
    return {
        "method": "group hold-out by album artist",
        "train_tracks": len(train),
        "valid_tracks": len(valid),
        "train_artists": len({t.group for t in train}),
        "valid_artists": len({t.group for t in valid}),
        "train_label_counts": dict(Counter(t.label for t in train)),
        "valid_label_counts": dict(Counter(t.label for t in valid)),
    }


def _plot(
    metrics: dict[str, Any],
    history: list[dict[str, float]],
    labels: Sequence[str],
    stem: Path,
    model_id: str,
    log: Callable[[str], None],
) -> None:
    """The confusion matrix (and learning curves, when there were epochs) beside the model, as PNG."""
    try:
        import matplotlib  # noqa: F401  (optional for a head: only the plots need it)
    except ImportError:
        log("matplotlib is not installed: no confusion plot")
        return
    plot_confusion(
        np.array(metrics["confusion"]), labels, stem.with_name(stem.name + ".confusion.png"),
        f"{model_id}, held-out artists",
    )  # fmt: skip
    if history:
        plot_history(history, stem.with_name(stem.name + ".curves.png"))
