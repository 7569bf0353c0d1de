"""Knowledge distillation: a teacher model's view of each training track, as soft targets.

The teacher is any model file the plugin runs (in practice the bundled musicnn model, for
training the small CNN): it listens to each training track as the plugin would, and its mean
window probabilities become that track's soft target (`TrainConfig.distill_weight` mixes them
with the label). Only genre_model is needed; the teacher runs in onnxruntime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from genre_model import Classifier, classify_files
from training.data.tracks import Track
from training.errors import ConfigError, TrainingError


def teacher_probabilities(
    tracks: Sequence[Track],
    labels: Sequence[str],
    teacher: str | os.PathLike[str],
    max_windows: int | None = 8,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """The teacher's mean window probabilities for each of `tracks`, (n_tracks, len(labels)),
    columns in `labels` order.

    max_windows: windows the teacher hears per track, placed as the plugin places them.
    Raises `ConfigError` when the teacher's labels are not `labels` (the targets would not
    line up) and `TrainingError` naming the files it could not decode.
    """
    clf = Classifier(teacher, device="auto")
    if sorted(clf.info.labels) != sorted(labels):
        raise ConfigError(
            f"teacher {teacher} has labels {sorted(clf.info.labels)}, the training data {sorted(labels)}: "
            "distillation needs the same labels"
        )
    order = [clf.info.labels.index(label) for label in labels]
    probs = np.zeros((len(tracks), len(labels)), dtype=np.float32)
    failed = []
    for done, outcome in enumerate(classify_files(clf, [t.path for t in tracks], max_windows, workers), 1):
        if outcome.prediction is None:
            failed.append(f"{outcome.path} ({outcome.error})")
        else:
            probs[outcome.index] = outcome.prediction.window_probs.mean(axis=0)[order]
        if done % 100 == 0 or done == len(tracks):
            log(f"teacher {clf.info.name}: {done}/{len(tracks)} tracks")
    if failed:
        raise TrainingError(f"the teacher could not hear {len(failed)} training tracks: {'; '.join(failed[:3])}")
    return probs
