"""Classify many files: decoding and features in worker processes, inference batched.

Decoding and the log-mel front end run in a pool of `workers` processes; the calling process
gathers finished tracks and runs the model on their windows together, so the stages overlap.
At most a few jobs per worker are in flight, so memory stays flat whatever the number of files.
Results come back in completion order, each tagged with the index of its path.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from genre_model.classifier import Classifier, TrackPrediction
from genre_model.errors import AudioDecodeError
from genre_model.frontend import FrontendConfig
from genre_model.windows import track_features

# Jobs queued per worker: enough to keep every worker busy while results wait for inference.
_JOBS_PER_WORKER = 4


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Result for the file at `index` of the input: a prediction or the decode error."""

    index: int
    path: str
    prediction: TrackPrediction | None = None
    error: AudioDecodeError | None = None


def resolve_workers(workers: int | str) -> int:
    """`auto` -> the number of usable cores; an int >= 0 as given (0 = decode in this process)."""
    if workers == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = int(workers)
    if count < 0:
        raise ValueError(f"workers must be 'auto' or >= 0, got {workers!r}")
    return count


def worker_context() -> multiprocessing.context.BaseContext:
    """Start method for worker processes: forkserver where available (never fork a process that
    may hold onnxruntime or BLAS threads), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _init_worker() -> None:
    # Ctrl-C is handled once, in the parent, which then stops after the tracks in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Decoder libraries (libmpg123 inside libsndfile) print resync notes about damaged files
    # straight to file descriptor 2. Failures reach the parent as `AudioDecodeError` values and
    # are logged there once, with the path; the raw notes would only interleave with them.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    # Parallelism comes from the worker processes; BLAS threads inside each would oversubscribe.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _features_job(path: str, frontend: FrontendConfig, max_windows: int | None) -> np.ndarray | AudioDecodeError:
    try:
        return track_features(path, frontend, max_windows)
    except AudioDecodeError as exc:
        return exc
    except Exception as exc:  # a decoder bug on one odd file must not end the run
        return AudioDecodeError(path, f"unexpected {type(exc).__name__}: {exc}")


def classify_files(
    classifier: Classifier,
    paths: Iterable[str | os.PathLike[str]],
    max_windows: int | None = 8,
    workers: int | str = "auto",
) -> Iterator[Outcome]:
    """Classify `paths`, yielding one `Outcome` per path as soon as it is known.

    max_windows: windows analysed per track (None = all). workers: decode processes; 0 or 1
    decodes in this process.
    """
    frontend = classifier.info.frontend
    n_workers = resolve_workers(workers)
    jobs = ((i, os.fspath(p)) for i, p in enumerate(paths))
    if n_workers <= 1:
        for i, path in jobs:
            result = _features_job(path, frontend, max_windows)
            yield from _batch_outcomes(classifier, [(i, path, result)])
        return
    yield from _pooled(classifier, jobs, n_workers, max_windows)


# A file whose decoding kills its worker process twice (a decoder crash, not bad luck).
_CRASH_REASON = "the decoder process crashed on this file"


def _pooled(
    classifier: Classifier, jobs: Iterator[tuple[int, str]], n_workers: int, max_windows: int | None
) -> Iterator[Outcome]:
    """`classify_files` with a process pool that survives a worker dying.

    When a worker dies (a decoder segfault, the out-of-memory killer), every job in flight is
    lost with it. The pool is replaced and those jobs are retried one at a time, so the file
    that kills a worker again is the culprit: it fails with `_CRASH_REASON`, the others go on.
    """
    frontend = classifier.info.frontend

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(n_workers, mp_context=worker_context(), initializer=_init_worker)

    pool = new_pool()
    in_flight: dict[cf.Future, tuple[tuple[int, str], bool]] = {}  # future -> (job, run alone?)
    suspects: collections.deque[tuple[int, str]] = collections.deque()
    pending: list[tuple[int, str, np.ndarray | AudioDecodeError]] = []
    exhausted = False
    try:
        while in_flight or suspects or not exhausted:
            if suspects:
                if not in_flight:
                    job = suspects.popleft()
                    in_flight[pool.submit(_features_job, job[1], frontend, max_windows)] = (job, True)
            while not suspects and not exhausted and len(in_flight) < n_workers * _JOBS_PER_WORKER:
                job = next(jobs, None)
                if job is None:
                    exhausted = True
                    break
                in_flight[pool.submit(_features_job, job[1], frontend, max_windows)] = (job, False)
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            crashed = False
            for future in done:
                job, alone = in_flight.pop(future)
                try:
                    pending.append((*job, future.result()))
                except BrokenProcessPool:
                    crashed = True
                    if alone:
                        pending.append((*job, AudioDecodeError(job[1], _CRASH_REASON)))
                    else:
                        suspects.append(job)
            if crashed:
                suspects.extend(job for job, _ in in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
            # Run the model once enough windows are waiting to fill a batch (or at the end).
            n_windows = sum(r.shape[0] for _, _, r in pending if not isinstance(r, AudioDecodeError))
            if pending and (n_windows >= classifier.batch_size or not in_flight):
                yield from _batch_outcomes(classifier, pending)
                pending = []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _batch_outcomes(
    classifier: Classifier, finished: list[tuple[int, str, np.ndarray | AudioDecodeError]]
) -> Iterator[Outcome]:
    decoded = [(i, p, r) for i, p, r in finished if not isinstance(r, AudioDecodeError)]
    for i, path, result in finished:
        if isinstance(result, AudioDecodeError):
            yield Outcome(i, path, error=result)
    predictions = classifier.predict([r for _, _, r in decoded])
    for (i, path, _), prediction in zip(decoded, predictions):
        yield Outcome(i, path, prediction=prediction)
