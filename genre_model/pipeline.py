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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import numpy as np

from genre_model.classifier import Classifier, TrackPrediction
from genre_model.errors import AudioDecodeError
from genre_model.windows import track_features

R = TypeVar("R")

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


class DecoderPool:
    """Worker processes that decode files, surviving a worker that dies.

    Created empty; the processes start on the first job and stay for later calls (one pool for
    a whole `beet import`), until `close`. With `workers` <= 1 jobs run in this process.

    When a worker dies (a decoder segfault, the out-of-memory killer), every job in flight is
    lost with it. The processes are replaced and those jobs retried one at a time, so the file
    that kills a worker again is the culprit: it fails with `_CRASH_REASON`, the others go on.
    """

    def __init__(self, workers: int, on_start: Callable[[int], None] | None = None) -> None:
        """workers: processes (<= 1: none, jobs run here). on_start(workers): called each time
        processes are started (first use, and after a crash), e.g. to log it."""
        self.workers = workers
        self.on_start = on_start
        self._executor: cf.ProcessPoolExecutor | None = None
        self.in_flight = 0  # jobs of the running `imap` not yet returned

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        if self.on_start is not None:
            self.on_start(self.workers)
        return cf.ProcessPoolExecutor(self.workers, mp_context=worker_context(), initializer=_init_worker)

    def imap(
        self, job: Callable[..., R], paths: Iterable[tuple[int, str]], *args: Any
    ) -> Iterator[tuple[int, str, R | AudioDecodeError]]:
        """Run ``job(path, *args)`` for each ``(index, path)``; yield ``(index, path, result)`` in
        completion order. A job that raises gives an `AudioDecodeError` for its path.

        At most `_JOBS_PER_WORKER` jobs per worker are queued, so memory stays flat. Closing the
        iterator early waits for the jobs in flight and starts no new ones.
        """
        if self.workers <= 1:
            for i, path in paths:
                yield i, path, _guarded(job, path, *args)
            return
        if self._executor is None:
            self._executor = self._new_executor()
        jobs = iter(paths)
        in_flight: dict[cf.Future, tuple[tuple[int, str], bool]] = {}  # future -> (job, run alone?)
        suspects: collections.deque[tuple[int, str]] = collections.deque()
        exhausted = False
        try:
            while in_flight or suspects or not exhausted:
                if suspects and not in_flight:
                    item = suspects.popleft()
                    in_flight[self._executor.submit(_guarded, job, item[1], *args)] = (item, True)
                while not suspects and not exhausted and len(in_flight) < self.workers * _JOBS_PER_WORKER:
                    item = next(jobs, None)
                    if item is None:
                        exhausted = True
                        break
                    in_flight[self._executor.submit(_guarded, job, item[1], *args)] = (item, False)
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                finished, crashed = [], False
                for future in done:
                    item, alone = in_flight.pop(future)
                    try:
                        finished.append((*item, future.result()))
                    except BrokenProcessPool:
                        crashed = True
                        if alone:
                            finished.append((*item, AudioDecodeError(item[1], _CRASH_REASON)))
                        else:
                            suspects.append(item)
                if crashed:
                    suspects.extend(item for item, _ in in_flight.values())
                    in_flight.clear()
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
                for k, result in enumerate(finished, 1):
                    self.in_flight = len(in_flight) + len(suspects) + len(finished) - k
                    yield result
        finally:
            for future in in_flight:
                future.cancel()
            cf.wait(in_flight)
            self.in_flight = 0

    def close(self) -> None:
        """Stop the worker processes (they finish the job they are on)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _guarded(job: Callable[..., R], path: str, *args: Any) -> R | AudioDecodeError:
    """``job(path, *args)``, with any exception turned into an `AudioDecodeError` for `path`:
    a decoder bug on one odd file must not end the run."""
    try:
        return job(path, *args)
    except AudioDecodeError as exc:
        return exc
    except Exception as exc:
        return AudioDecodeError(path, f"unexpected {type(exc).__name__}: {exc}")


# A file whose decoding kills its worker process twice (a decoder crash, not bad luck).
_CRASH_REASON = "the decoder process crashed on this file"


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
    results = pool.imap(track_features, jobs, frontend, max_windows)
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
    for (i, path, _), prediction in zip(decoded, predictions):
        yield Outcome(i, path, prediction=prediction)
