"""Retrain with a cross-validated estimate: the estimate first (`training.pipelines.retrain_cv`),
then the model from every track, its file and its card.

`beet genreclass-train` runs this through `training.pipelines.retrain_library`. The model written
is trained on all the tracks given, by `training.pipelines.retrain`'s method for the base model (a
head on its embedding, or torch); its metadata and card carry the estimate of how it does on
artists it has not heard, or, when a run was forced without one, say that there is none.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genre_model import Classifier
from genre_model.classifier import bundled_model_path
from training.atomic import replaced_atomically
from training.data.tracks import Track
from training.pipelines.retrain import (
    METHODS,
    RetrainJob,
    RetrainOptions,
    RetrainResult,
    plural,
    support_text,
    training_method,
    write_card,
)
from training.pipelines.retrain_cv import (
    ESTIMATORS,
    K_FOLDS,
    NoEstimate,
    estimate_problems,
    no_estimate_message,
    summarise,
)


def retrain_estimated(
    tracks: Sequence[Track],
    labels: Sequence[str],
    out_path: str | Path,
    options: RetrainOptions,
    cache_dir: str | Path,
    k: int = K_FOLDS,
    force: bool = False,
    notes: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> RetrainResult:
    """Estimate by k-fold cross-validation over the tracks' groups (artists), then train on every
    track and write `out_path` (.onnx), its card (``NAME.card.json``) and the estimate's confusion plot.

    tracks: each with its set of genres, all within `labels`. cache_dir: features and verdicts
    cached by content (safe to keep between runs). force: when no estimate is possible (a genre's
    tracks by one artist), train without one instead of raising `NoEstimate`; the card then says
    so. notes: added to the card's ``data`` (e.g. what was rolled up into what).
    """
    started = time.time()
    out_path = Path(out_path)
    base = Classifier(options.base_model or bundled_model_path(), device="cpu")
    method = training_method(base.model_path, options.from_scratch)
    problems = estimate_problems(tracks, labels)
    if problems and not force:
        raise NoEstimate(no_estimate_message(problems))
    estimate = None
    if not problems:
        try:
            predictions = ESTIMATORS[method](tracks, labels, base, options, cache_dir, k, log)
        except NoEstimate as exc:  # undecodable files can leave a genre one artist, or no cut of folds
            if not force:
                raise
            problems = [str(exc)]
        else:
            estimate = summarise(predictions, labels, base.info.labels, base.info.model_id)
            for path, reason in estimate["skipped"].items():
                log(f"skipped {path}: {reason}")
    log(f"training the model on all {plural(len(tracks), 'track')}")
    data = data_summary(tracks, labels) | (notes or {})
    with replaced_atomically(out_path) as tmp_model:  # an interrupted run leaves no half-written model
        module, function = METHODS[method].split(":")
        train = getattr(importlib.import_module(module), function)  # imported only when used: torch or not
        trained = train(RetrainJob(tracks, [], labels, tmp_model, options, base, cache_dir, log))
        from training.export.metadata import update_metrics

        info = update_metrics(
            tmp_model, file_metrics(estimate, problems, len(trained.train)), training_fields={"data": data}
        )
    fields = {
        "data": data,
        "trained_on": len(trained.train),
        "estimate": estimate,
        "no_estimate": "; ".join(problems) if estimate is None else None,
        "history": trained.history,
    }
    result = write_card(out_path, info, labels, base.info, method, fields, started)
    if estimate is not None:
        stem = out_path.with_suffix("")
        _plot_confusion(estimate["metrics"], labels, stem.with_name(stem.name + ".confusion.png"), info.model_id, log)
    return result


def data_summary(tracks: Sequence[Track], labels: Sequence[str]) -> dict[str, Any]:
    """What the model learns from: tracks, artists, tracks that may carry each genre, set tracks."""
    counts = Counter(g for t in tracks for g in t.genres)
    return {
        "tracks": len(tracks),
        "artists": len({t.group for t in tracks}),
        "label_counts": {label: counts[label] for label in labels},
        "set_tracks": sum(len(t.genres) > 1 for t in tracks),
    }


def file_metrics(estimate: dict[str, Any] | None, problems: Sequence[str], n_trained: int) -> dict[str, Any]:
    """The figures the model file carries in its metadata: the estimate's, or the reason there is none."""
    if estimate is None:
        return {"protocol": f"no estimate (--force): trained on all {n_trained} tracks; " + "; ".join(problems)}
    m, s = estimate["metrics"], estimate["track_accuracy_spread"]
    figures = {
        "protocol": f"{estimate['k']}-fold cross-validation over artists, out-of-fold ({estimate['protocol']}); "
        f"the model itself trained on all {n_trained} tracks",
        **{key: m[key] for key in ("track_accuracy", "balanced_accuracy", "macro_f1", "n_tracks")},
        "track_accuracy_sd": s["sd"] if s["sd"] is not None else s.get("standard_error"),
    }
    if estimate["comparison"]:
        figures["base_model_on_shared_labels"] = {
            key: estimate["comparison"][key]
            for key in ("n_tracks", "new_track_accuracy", "base_track_accuracy", "base_model")
        }
    return figures


def _plot_confusion(metrics: dict[str, Any], labels, path: Path, model_id: str, log: Callable[[str], None]) -> None:
    try:
        import matplotlib  # noqa: F401  (optional for a head: only the plot needs it)
    except ImportError:
        log("matplotlib is not installed: no confusion plot")
        return
    from training.evaluation.metrics import plot_confusion

    plot_confusion(np.array(metrics["confusion"]), labels, path, f"{model_id}, cross-validated over artists")


def estimate_lines(card: dict[str, Any]) -> list[str]:
    """A `retrain_estimated` card as lines of text: the estimate (or why there is none), per
    genre, the base model beside the new one, and what was trained and written."""
    data, labels = card["data"], card["labels"]
    several = f"; {data['set_tracks']} with several genres" if data.get("set_tracks") else ""
    lines = []
    for line in data.get("rolled_up", []):
        lines.append(f"rolled up: {line}")
    estimate = card["estimate"]
    if estimate is None:
        lines.append(f"no estimate: {card['no_estimate']}")
    else:
        m, s = estimate["metrics"], estimate["track_accuracy_spread"]
        if s["sd"] is not None:
            spread = f"sd {s['sd']:.3f} over {len(estimate['per_fold'])} folds, {s['min']:.3f} to {s['max']:.3f}"
        else:
            spread = f"standard error {s.get('standard_error') or 0:.3f}"
        lines += [
            f"estimate: {estimate['k']}-fold cross-validation over artists, each track predicted by a model that never "
            f"heard its artist ({estimate['protocol']}): {plural(m['n_tracks'], 'track')} by "
            f"{plural(estimate['n_artists'], 'artist')}",
            f"  {card['model']}: track accuracy {m['track_accuracy']:.3f} ({spread}), "
            f"balanced {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}",
            "  per genre, recall / precision (tracks): "
            + ", ".join(
                f"{label} {c['recall']:.2f} / {c['precision']:.2f} ({c['support']})"
                for label, c in m["per_class"].items()
            ),
        ]
        lines += [f"  note: {note}" for note in estimate["notes"]]
        shared = estimate["comparison"]
        if shared:
            lines.append(
                f"  on the {shared['n_tracks']} tracks in genres both models know ({', '.join(shared['shared_labels'])}), "
                f"each choosing among those: new {shared['new_track_accuracy']:.3f}, "
                f"{shared['base_model']} {shared['base_track_accuracy']:.3f} (the same folds)"
            )
        else:
            lines.append(f"  {card['base_model']} knows none of these genres: no comparison")
    lines.append(
        f"trained on all {plural(card['trained_on'], 'track')} by {plural(data['artists'], 'artist')} "
        f"({support_text(data['label_counts'], labels)}{several})"
        + ("" if estimate else ", without an estimate (--force); its card says so")
    )
    lines.append(f"wrote {card['file']} (card: {card['card']})")
    return lines
