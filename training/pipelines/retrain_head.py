"""`retrain`'s head method: a logistic-regression head on the base model's ``embedding``, no torch.

The base model runs once on each training track's windows (`training.models.personal_head`, cached
per file, so a second run with the same tracks costs seconds); the head is fitted on the window
rows and appended to the base graph in place of its old output layer.
"""

from __future__ import annotations

import time

from genre_model import ModelInfo
from genre_model.model_file import version_stamp
from training.data.splits import check_disjoint
from training.errors import NotEnoughData
from training.features.cache import Digests
from training.features.windows import parity_windows
from training.models.personal_head import append_head, fit_head, window_embeddings
from training.pipelines.retrain import RetrainJob, Trained


def train_head(job: RetrainJob) -> Trained:
    """Fit a head for the job's labels on the embeddings of its training tracks; write base + head to its `out_path`.

    Embeddings are cached under `cache_dir`. Raises `NotEnoughData` when a label keeps no
    decodable training track, `NoEmbeddingError` when the base has no ``embedding`` output.
    """
    train_tracks, valid_tracks, labels, options, base, log = (
        job.train_tracks, job.valid_tracks, list(job.labels), job.options, job.base, job.log
    )  # fmt: skip
    base_info = base.info
    digests = Digests()
    log(f"training a head on the embeddings of {base_info.model_id}: {len(train_tracks)} tracks, {len(labels)} genres")
    embedded, failures = window_embeddings(
        base.model_path, [t.path for t in train_tracks], options.head_windows, options.workers, job.cache_dir,
        digests, options.device, log,
    )  # fmt: skip
    for path, reason in failures.items():
        log(f"skipped {path}: {reason}")
    kept = [(t, e) for t, e in zip(train_tracks, embedded, strict=True) if e is not None]
    missing = sorted(set(labels) - {g for t, _ in kept for g in t.genres})
    if missing:
        raise NotEnoughData(f"no decodable training track left for {', '.join(missing)}")
    train = [t for t, _ in kept]
    digests.unreadable(
        [t.path for t in valid_tracks]
    )  # an unreadable one is keyed by its path: `compare_models` reports it
    check_disjoint(train, valid_tracks, lambda path: digests.get(path, path))
    started = time.time()
    sets = [t.label_indices(labels) for t in train]  # a set track learns its set
    head = fit_head([e for _, e in kept], sets, len(labels), options.head_c)
    n_windows = sum(len(e) for _, e in kept)
    log(f"head fitted on {n_windows} windows in {time.time() - started:.1f} s")
    if not head.converged:
        log("the head's solver stopped at its iteration limit before converging")
    info = ModelInfo(
        name=options.name,
        version=options.version or version_stamp(),
        labels=tuple(labels),
        frontend=base_info.frontend,
        training={
            "arch": base_info.training.get("arch", "unknown"),
            "head": f"logistic regression (C={options.head_c}, balanced classes) on the embedding of {base_info.model_id}",
            "start": base_info.model_id,
            "sources": sorted({t.source for t in train}),
            "config": {"head_windows": options.head_windows, "head_c": options.head_c, "n_windows": n_windows},
        },
    )
    # Trained on everything (no held-out tracks): the parity check reads training tracks' windows.
    parity = parity_windows(valid_tracks or train, base_info.frontend)
    append_head(base.model_path, head.weights, head.bias, info, job.out_path, parity)
    return Trained(train, list(valid_tracks), [], "head on the base model's embedding")
