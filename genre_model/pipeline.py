"""Classify many files: decoding and features in worker processes, inference batched.

Decoding and the log-mel front end run in a `DecoderPool` of `workers` processes; the calling process
gathers finished tracks and runs the model on their windows together, so the stages overlap.
At most a few jobs per worker are in flight, so memory stays flat whatever the number of files.
Results come back in completion order, each tagged with the index of its path; `in_input_order`
puts them back in the order of the paths.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

import numpy as np

from genre_model.classifier import Classifier, TrackPrediction
from genre_model.decoder_pool import DecoderPool, resolve_workers
from genre_model.errors import AudioDecodeError
from genre_model.windows import track_features


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Result for the file at `index` of the input: a prediction or the decode error."""

    index: int
    path: str
    prediction: TrackPrediction | None = None
    error: AudioDecodeError | None = None


def classify_files(
    classifier: Classifier,
    paths: Iterable[str | os.PathLike[str]],
    max_windows: int | None = 8,
    workers: int | str = "auto",
    pool: DecoderPool | None = None,
) -> Iterator[Outcome]:
    """Classify `paths`, yielding one `Outcome` per path as soon as it is known.

    max_windows: windows analysed per track (None = all). workers: decode processes; 0 or 1
    decodes in this process. pool: decode in this existing pool instead (`workers` is then
    ignored); it stays open for the caller's next call.
    """
    if pool is None:
        with DecoderPool(resolve_workers(workers)) as own:
            yield from classify_files(classifier, paths, max_windows, pool=own)
        return
    frontend = classifier.info.frontend
    jobs = ((i, os.fspath(p)) for i, p in enumerate(paths))
    pending: list[tuple[int, str, np.ndarray | AudioDecodeError]] = []
    results = pool.imap(track_features, jobs, frontend, max_windows, whole_file=not max_windows)
    try:
        for finished in results:
            pending.append(finished)
            # Run the model once enough windows wait to fill a batch, or when nothing else is coming soon.
            n_windows = sum(r.shape[0] for _, _, r in pending if not isinstance(r, AudioDecodeError))
            if n_windows >= classifier.batch_size or pool.in_flight == 0:
                yield from _batch_outcomes(classifier, pending)
                pending = []
        yield from _batch_outcomes(classifier, pending)
    finally:
        results.close()


def _batch_outcomes(
    classifier: Classifier, finished: list[tuple[int, str, np.ndarray | AudioDecodeError]]
) -> Iterator[Outcome]:
    decoded = [(i, p, r) for i, p, r in finished if not isinstance(r, AudioDecodeError)]
    for i, path, result in finished:
        if isinstance(result, AudioDecodeError):
            yield Outcome(i, path, error=result)
    predictions = classifier.predict([r for _, _, r in decoded])
    for (i, path, _), prediction in zip(decoded, predictions, strict=True):
        yield Outcome(i, path, prediction=prediction)


def in_input_order(outcomes: Iterator[Outcome]) -> Iterator[Outcome]:
    """`outcomes` (as `classify_files` yields them, in completion order) in the order of their
    indices, 0, 1, 2, ...: each is held until every earlier one has come, so that results print
    the same way on every run whatever decoder finishes first. What is held is at most the jobs in
    flight. Closing this generator closes `outcomes` (which waits for the decoders in flight)."""
    held: dict[int, Outcome] = {}
    following = 0
    try:
        for outcome in outcomes:
            held[outcome.index] = outcome
            while following in held:
                yield held.pop(following)
                following += 1
        yield from (held[i] for i in sorted(held))  # indices skipped by the caller's numbering
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
