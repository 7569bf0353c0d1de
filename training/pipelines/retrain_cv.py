"""Retraining's estimate: k-fold cross-validation over artist groups, and the model trained on everything.

A library of a few dozen artists cannot spare a fifth of them for a hold-out that then judges the
model on a handful of tracks. Instead every track is held out once: the artists are cut into
`K_FOLDS` folds (`training.data.splits.group_kfold`: compilations grouped by track artist, as
`load_beets` names the groups), a model is trained on the other folds and predicts the held-out
one, and the pooled out-of-fold predictions give the estimate, with the spread of the folds'
accuracies beside it. The current (base) model classifies the same tracks, so the comparison
uses the same folds. The installed model is then trained on every track (`retrain_estimated`).

What each method can afford:
- ``head`` (a base with an ``embedding``): embeddings are computed once (cached per file) and a
  logistic-regression head is fitted per fold on them, seconds each: all k folds are run.
- ``fine-tune``/``scratch`` (torch): each fold is a whole training, as long as the final one, so
  only the first of the k folds is trained and predicted; the estimate is that one fold's
  (about 1/k of the artists), with its binomial standard error instead of a spread over folds.

Folds: k is `K_FOLDS`, or the number of artists when there are fewer. A genre with fewer artists
than folds is not a reason to cut fewer folds (fewer folds train on less and so underestimate the
model trained on everything); what matters is that every fold leaves each genre a training track,
so the fold assignment is searched for one that does (`plan_folds`), and only when none exists is k
lowered. Either way the summary says so. No estimate is possible when a genre's tracks all come
from one artist: `estimate_problems` names those genres, and the run stops unless forced.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genre_model import Classifier
from training.data.genres import shared_label_indices
from training.data.splits import K_FOLDS, group_kfold
from training.data.tracks import Track
from training.errors import NotEnoughData
from training.evaluation.metrics import metrics_from_probs
from training.features.cache import Digests, cached_window_outputs
from training.pipelines.retrain import RetrainJob, RetrainOptions, plural, vote_scores

# Fold assignments tried (seeds of the shuffled stratified group k-fold) before k is lowered.
SEARCH_SEEDS = 20
# Windows per track the out-of-fold predictions and the base model's are taken on (the head's training windows).
EVAL_WINDOWS = 8


class NoEstimate(NotEnoughData):
    """No cross-validated estimate is possible (a genre's tracks are all by one artist); says what
    is short and what would fix it."""


@dataclasses.dataclass(frozen=True)
class FoldPlan:
    """fold (0..k-1) of each track; notes: what the summary must say about the folds."""

    folds: list[int]
    k: int
    notes: list[str]

    def sides(self, fold: int) -> tuple[list[int], list[int]]:
        """(training, held-out) track indices of `fold`."""
        return [i for i, f in enumerate(self.folds) if f != fold], [i for i, f in enumerate(self.folds) if f == fold]


def artist_name(group: str) -> str:
    """A `load_beets` group as a person reads it: 'artist-Miles Davis' -> 'Miles Davis'."""
    return group.removeprefix("artist-")


def artists_per_genre(tracks: Sequence[Track], labels: Sequence[str]) -> dict[str, set[str]]:
    """{label: the groups of the tracks that may carry it}."""
    groups: dict[str, set[str]] = {label: set() for label in labels}
    for t in tracks:
        for g in t.genres:
            if g in groups:
                groups[g].add(t.group)
    return groups


def estimate_problems(tracks: Sequence[Track], labels: Sequence[str]) -> list[str]:
    """Why no cross-validated estimate of a model of `labels` is possible (empty: it is)."""
    groups = artists_per_genre(tracks, labels)
    problems = []
    if len({t.group for t in tracks}) < 2:
        problems.append(f"all {plural(len(tracks), 'track')} are by one album artist")
    for label in labels:
        if len(groups[label]) == 1:
            n = sum(label in t.genres for t in tracks)
            problems.append(
                f"{label}: all {plural(n, 'track')} by one artist ({artist_name(next(iter(groups[label])))})"
            )
    return problems


def no_estimate_message(problems: Sequence[str]) -> str:
    """The refusal: what is short, and the ways out."""
    return (
        "no cross-validated estimate is possible, since a genre must have tracks by at least 2 artists "
        "(one to learn from, one to check): " + "; ".join(problems)
        + ". Tag tracks of these genres by another artist, leave them out (--vocabulary, or a higher --min-tracks), "
        "merge rare genres into their parents with --rollup, or give --force to train without an estimate"
    )  # fmt: skip


def plan_folds(tracks: Sequence[Track], labels: Sequence[str], k: int = K_FOLDS, seed: int = 0) -> FoldPlan:
    """Artist folds for the estimate: k (or as many as there are artists, if fewer), each fold
    leaving every label a training track. Raises `NoEstimate` when `estimate_problems` finds any,
    or when no assignment of 2 or more folds keeps every label on every training side."""
    problems = estimate_problems(tracks, labels)
    if problems:
        raise NoEstimate(no_estimate_message(problems))
    n_groups = len({t.group for t in tracks})
    notes = [f"only {n_groups} artists: {n_groups} folds"] if n_groups < k else []
    top = min(k, n_groups)
    for k_try in range(top, 1, -1):
        for s in range(seed, seed + SEARCH_SEEDS):
            folds = group_kfold(tracks, k_try, s)
            if all(_every_label_trains(tracks, labels, folds, f) for f in range(k_try)):
                if k_try < top:
                    notes.append(f"{k_try} folds: no cut into {top} left every genre a training artist in each")
                groups = artists_per_genre(tracks, labels)
                few = [f"{label} ({len(groups[label])})" for label in labels if len(groups[label]) < k_try]
                if few:
                    notes.append(f"artists fewer than folds, so some folds hold none of their tracks: {', '.join(few)}")
                return FoldPlan(folds, k_try, notes)
    raise NoEstimate("no way of cutting the artists into folds leaves every genre a training track in each fold")


def _every_label_trains(tracks: Sequence[Track], labels: Sequence[str], folds: Sequence[int], fold: int) -> bool:
    present = {g for t, f in zip(tracks, folds, strict=True) if f != fold for g in t.genres}
    return set(labels) <= present


@dataclasses.dataclass
class Predictions:
    """Out-of-fold window probabilities of the tracks an estimate predicted.

    tracks, folds: the predicted tracks and their folds. new: (n_windows_i, n_labels) of the model
    trained without the track's fold; base: the base model's (n_windows_i, n_base_labels), None for
    a track in no genre it knows. evaluated: the folds trained. skipped: {path: reason}.
    """

    plan: FoldPlan
    evaluated: list[int]
    tracks: list[Track]
    folds: list[int]
    new: list[np.ndarray]
    base: list[np.ndarray | None]
    skipped: dict[str, str]
    protocol: str


def head_predictions(
    tracks: Sequence[Track], labels: Sequence[str], base: Classifier, options: RetrainOptions, cache_dir, k: int,
    log: Callable[[str], None],
) -> Predictions:  # fmt: skip
    """The head's estimate: embeddings of every track once (cached), then a head per fold."""
    from training.models.personal_head import fit_head, window_embeddings

    digests = Digests()
    embedded, skipped = window_embeddings(
        base.model_path, [t.path for t in tracks], options.head_windows, options.workers, cache_dir, digests,
        options.device, log,
    )  # fmt: skip
    kept = [i for i, e in enumerate(embedded) if e is not None]
    tracks, embedded = [tracks[i] for i in kept], [embedded[i] for i in kept]
    plan = plan_folds(tracks, labels, k, options.seed)
    sets = [t.label_indices(labels) for t in tracks]
    new: dict[int, np.ndarray] = {}
    for fold in range(plan.k):
        train, held = plan.sides(fold)
        head = fit_head([embedded[i] for i in train], [sets[i] for i in train], len(labels), options.head_c)
        for i in held:
            new[i] = head.window_probabilities(embedded[i])
        log(f"fold {fold + 1}/{plan.k}: head on {len(train)} tracks, {len(held)} held out")
    order = sorted(new)
    return _with_base(
        plan, list(range(plan.k)), [tracks[i] for i in order], [plan.folds[i] for i in order], [new[i] for i in order],
        base, labels, options, cache_dir, digests, skipped, "a head per fold on the base model's embedding", log,
    )  # fmt: skip


def network_predictions(
    tracks: Sequence[Track], labels: Sequence[str], base: Classifier, options: RetrainOptions, cache_dir, k: int,
    log: Callable[[str], None],
) -> Predictions:  # fmt: skip
    """The torch estimate: the first of k artist folds only (each fold is a whole training)."""
    from training.pipelines.retrain_network import train_network

    plan = plan_folds(tracks, labels, k, options.seed)
    train, held = plan.sides(0)
    log(f"estimate: training on {len(train)} tracks of folds 2-{plan.k}, predicting the {len(held)} of fold 1")
    digests = Digests()
    with tempfile.TemporaryDirectory(prefix="genreclass-fold-") as work:
        fold_model = Path(work) / "fold.onnx"
        held_tracks = [tracks[i] for i in held]
        train_network(
            RetrainJob([tracks[i] for i in train], held_tracks, labels, fold_model, options, base, cache_dir, log)
        )
        model = Classifier(fold_model, device="cpu")
        probs, skipped = cached_window_outputs(
            [t.path for t in held_tracks], Path(work) / "probabilities", model.info.frontend, EVAL_WINDOWS,
            model.window_probabilities, options.workers, digests, what="fold 1's predictions", log=log,
        )  # fmt: skip
    kept = [i for i, p in enumerate(probs) if p is not None]
    return _with_base(
        plan, [0], [held_tracks[i] for i in kept], [0] * len(kept), [np.asarray(probs[i]) for i in kept], base,
        labels, options, cache_dir, digests, skipped, f"fold 1 of {plan.k} only (torch: each fold is a whole training)",
        log,
    )  # fmt: skip


# Each method's estimate, with `head_predictions`' parameters (torch is imported only by the torch one).
ESTIMATORS: dict[str, Callable[..., Predictions]] = {
    "head": head_predictions,
    "fine-tune": network_predictions,
    "scratch": network_predictions,
}


def _with_base(
    plan, evaluated, tracks, folds, new, base: Classifier, labels, options, cache_dir, digests, skipped, protocol, log
) -> Predictions:
    """`Predictions` with the base model's window probabilities on the same windows (cached per file)."""
    known = {labels[i] for i in shared_label_indices(labels, base.info.labels)}
    pick = [i for i, t in enumerate(tracks) if known & set(t.genres)]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base.info.model_id)
    found, failures = cached_window_outputs(
        [tracks[i].path for i in pick], Path(cache_dir) / f"{safe}-probabilities-{EVAL_WINDOWS}", base.info.frontend,
        EVAL_WINDOWS, base.window_probabilities, options.workers, digests, what=f"{base.info.model_id}'s verdicts",
        log=log,
    )  # fmt: skip
    base_probs: list[np.ndarray | None] = [None] * len(tracks)
    for i, p in zip(pick, found, strict=True):
        base_probs[i] = None if p is None else np.asarray(p)
    return Predictions(plan, evaluated, list(tracks), list(folds), list(new), base_probs, {**skipped, **failures},
                       protocol)  # fmt: skip


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, standard deviation (None for one value), min and max of per-fold figures."""
    return {
        "mean": float(statistics.mean(values)),
        "sd": float(statistics.stdev(values)) if len(values) > 1 else None,
        "min": float(min(values)),
        "max": float(max(values)),
    }


def summarise(pred: Predictions, labels: Sequence[str], base_labels: Sequence[str], base_id: str) -> dict[str, Any]:
    """The estimate as the card keeps it: pooled out-of-fold metrics (per-genre support, precision,
    recall, the confusion), each fold's accuracy and their spread, and the base model beside the new
    one on the tracks in genres both know, fold by fold."""
    labels = list(labels)
    truth = [list(t.genres) for t in pred.tracks]
    pooled = metrics_from_probs(pred.new, truth, labels)
    per_fold = []
    for f in pred.evaluated:
        idx = [i for i, fold in enumerate(pred.folds) if fold == f]
        if idx:
            m = metrics_from_probs([pred.new[i] for i in idx], [truth[i] for i in idx], labels)
            per_fold.append({"fold": f + 1, "n_tracks": len(idx), "track_accuracy": m["track_accuracy"],
                             "balanced_accuracy": m["balanced_accuracy"]})  # fmt: skip
    accuracy = spread([r["track_accuracy"] for r in per_fold])
    if len(per_fold) == 1:  # one fold: the binomial standard error of its accuracy
        p, n = pooled["track_accuracy"], pooled["n_tracks"]
        accuracy["standard_error"] = math.sqrt(p * (1 - p) / n) if n else None
    return {
        "protocol": pred.protocol,
        "k": pred.plan.k,
        "folds_evaluated": len(pred.evaluated),
        "notes": pred.plan.notes,
        "n_artists": len({t.group for t in pred.tracks}),
        "metrics": pooled,
        "per_fold": per_fold,
        "track_accuracy_spread": accuracy,
        "comparison": compare_on_shared(pred, labels, base_labels, base_id),
        "skipped": pred.skipped,
    }


def compare_on_shared(
    pred: Predictions, labels: Sequence[str], base_labels: Sequence[str], base_id: str
) -> dict[str, Any] | None:
    """Both models on the tracks with a genre both know (names equal up to case, punctuation and
    aliases: "hip hop" is "Hip-Hop"), each choosing among those genres only, so neither gains from
    having fewer to choose from; a track is right when the choice is in its set. None when the
    vocabularies share no genre."""
    shared = shared_label_indices(labels, base_labels)
    if not shared:
        return None
    new_cols, base_cols = (list(c) for c in zip(*sorted(shared.items()), strict=True))
    names = {labels[i] for i in new_cols}
    rows = []  # (fold, new right, base right)
    for t, fold, new, base in zip(pred.tracks, pred.folds, pred.new, pred.base, strict=True):
        if base is None or not names & set(t.genres):
            continue
        new_choice = labels[new_cols[int(vote_scores(new, labels)[new_cols].argmax())]]
        base_choice = labels[new_cols[int(vote_scores(base, base_labels)[base_cols].argmax())]]
        rows.append((fold, new_choice in t.genres, base_choice in t.genres))
    if not rows:
        return None

    def per_fold(column: int) -> list[float]:
        return [float(np.mean([r[column] for r in rows if r[0] == f])) for f in sorted({r[0] for r in rows})]

    return {
        "shared_labels": sorted(names, key=labels.index),
        "base_model": base_id,
        "n_tracks": len(rows),
        "new_track_accuracy": float(np.mean([r[1] for r in rows])),
        "base_track_accuracy": float(np.mean([r[2] for r in rows])),
        "new_spread": spread(per_fold(1)),
        "base_spread": spread(per_fold(2)),
    }
