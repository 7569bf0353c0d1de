"""Worker processes that decode files: `DecoderPool`, surviving workers that die or hang.

A job runs ``job(path, *args)`` in a worker; its failures come back as `AudioDecodeError`
values for its file. A worker that dies is replaced and the files in flight retried; a job
that runs past its time limit (`decode_time_limit`) has its worker killed and its file fails;
workers end with the process that made the pool.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import select
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import numpy as np

from genre_model.errors import AudioDecodeError

R = TypeVar("R")

# Jobs queued per worker: enough to keep every worker busy while results wait for inference.
_JOBS_PER_WORKER = 4


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


# Per-file time limit of a decode job, in seconds: a hung decoder (stuck in a loop, a stopped
# process, a file on a dead network share) must cost its own file, not the whole run. Measured
# on one core (2024 x86): 8 excerpts take < 0.2 s per file from libsndfile whatever its size,
# and at most 0.12 s per MB through ffmpeg (AAC, decoded up to the last excerpt); decoding
# every window (`max_windows` None, for training) takes up to 4.4 s per MB (16 kbit/s Opus,
# the most audio per byte). The limits leave ~8x that for slow machines, slow disks and a
# loaded system, and the base covers starting a worker and reading a file from a sleeping
# disk. A limit that is too long only delays the report on a hang; one too short fails a
# good file, so they err long.
DECODE_LIMIT_BASE_S = 60.0
DECODE_LIMIT_S_PER_MB_EXCERPTS = 1.0
DECODE_LIMIT_S_PER_MB_WHOLE = 30.0
# How often the caller checks the running jobs against their limits.
_WATCH_INTERVAL_S = 0.5
# How long `close` waits for idle workers to exit before killing them (a stopped one never does).
_CLOSE_GRACE_S = 5.0


def decode_time_limit(size_bytes: int, whole_file: bool) -> float:
    """Seconds a decode job on a file of `size_bytes` bytes may run before its worker is killed.

    whole_file: every window of the file is decoded (``max_windows=None``), not a few excerpts.
    """
    per_mb = DECODE_LIMIT_S_PER_MB_WHOLE if whole_file else DECODE_LIMIT_S_PER_MB_EXCERPTS
    return DECODE_LIMIT_BASE_S + per_mb * size_bytes / 1e6


# In a worker: the caller's table of running jobs, two doubles per slot, (worker pid, start
# time on the monotonic clock, 0.0 when not running). CLOCK_MONOTONIC is one clock for the
# whole machine, so the caller can compare the start with its own time.
_job_slots: Any = None


def _init_worker(slots: Any, caller_pid: int) -> None:
    global _job_slots
    _job_slots = slots
    # Die with the caller: a worker blocked on its job queue holds that queue's write end
    # itself, so it would never see the caller go, and it keeps the forkserver and the
    # resource tracker alive with it (both exit once the last worker is gone).
    _watch_caller(caller_pid)
    # Ctrl-C is handled once, in the parent, which then stops after the tracks in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What codecs print about damaged files (libmpg123's resync notes) is captured where
    # libsndfile is called (`genre_model.codec_messages`), here as in a process decoding itself.
    # Parallelism comes from the worker processes; BLAS threads inside each would oversubscribe.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _watch_caller(caller_pid: int) -> None:
    """Exit this process as soon as process `caller_pid` ends (a daemon thread waits for it)."""
    try:
        pidfd = os.pidfd_open(caller_pid)  # Linux >= 5.3: readable when the process ends
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        pidfd = None

    def wait() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:  # elsewhere: poll; a reused pid after the caller's death is unlikely within a second
            while _alive(caller_pid):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=wait, name="genreclass-watch-caller", daemon=True).start()


def _kill(pid: int) -> None:
    """SIGKILL `pid` if it still exists: a stopped process ignores every other signal until it
    is continued."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass
class _Job:
    index: int
    path: str
    alone: bool  # a suspect of a crash, run with no other job in flight
    slot: int  # its row in the table of running jobs
    size: int  # bytes
    limit: float  # seconds it may run


class DecoderPool:
    """Worker processes that decode files, surviving a worker that dies or hangs.

    Created empty; the processes start on the first job and stay for later calls (one pool for
    a whole `beet import`), until `close`. With `workers` <= 1 jobs run in this process (and
    no time limit applies: a job cannot be stopped from inside its own process).

    When a worker dies (a decoder segfault, the out-of-memory killer), every job in flight is
    lost with it. The processes are replaced and those jobs retried one at a time, so the file
    that kills a worker again is the culprit: it fails with `_CRASH_REASON`, the others go on.
    A job that runs past its time limit (`decode_time_limit`) has its worker killed: its file
    fails with the limit as its reason, the processes are replaced and the other jobs in
    flight, innocent, are run again. Workers exit when the process that made the pool ends.
    """

    def __init__(self, workers: int, on_start: Callable[[int], None] | None = None) -> None:
        """workers: processes (<= 1: none, jobs run here). on_start(workers): called each time
        processes are started (first use, and after a crash), e.g. to log it."""
        self.workers = workers
        self.on_start = on_start
        self._executor: cf.ProcessPoolExecutor | None = None
        self._slots: Any = None
        self._handoff: str | None = None  # the folder results come through (`_run_job`)
        self.in_flight = 0  # jobs of the running `imap` not yet returned

    def _handoff_dir(self) -> str:
        """A private folder for the workers' results, in memory (/dev/shm) where there is one."""
        if self._handoff is None:
            shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            self._handoff = tempfile.mkdtemp(prefix="genreclass-decoders-", dir=shm)
        return self._handoff

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        if self.on_start is not None:
            self.on_start(self.workers)
        context = worker_context()
        # A fresh table per executor: a killed worker may have left its rows half written.
        self._slots = context.RawArray("d", 2 * self.workers * _JOBS_PER_WORKER)
        return cf.ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(self._slots, os.getpid())
        )

    def _discard_executor(self) -> None:
        """Drop a broken executor (its processes are already ended or being ended)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def imap(
        self, job: Callable[..., R], paths: Iterable[tuple[int, str]], *args: Any, whole_file: bool = True
    ) -> Iterator[tuple[int, str, R | AudioDecodeError]]:
        """Run ``job(path, *args)`` for each ``(index, path)``; yield ``(index, path, result)`` in
        completion order. A job that raises, or runs past its time limit, gives an
        `AudioDecodeError` for its path.

        whole_file: the job decodes every window of its file rather than a few excerpts; it
        chooses the time limit (`decode_time_limit`). At most `_JOBS_PER_WORKER` jobs per
        worker are queued, so memory stays flat. Closing the iterator early waits for the jobs
        in flight (each within its limit) and starts no new ones.
        """
        if self.workers <= 1:
            for i, path in paths:
                yield i, path, _guarded(job, path, *args)
            return
        jobs = iter(paths)
        in_flight: dict[cf.Future, _Job] = {}
        suspects: collections.deque[tuple[int, str]] = collections.deque()  # run alone, one at a time
        retry: collections.deque[tuple[int, str]] = collections.deque()  # innocent: run again as usual
        timed_out: set[cf.Future] = set()
        exhausted = False
        # A stall: jobs wait but none starts (idle workers stopped while one held the job
        # queue's lock). The workers are then killed and the jobs rerun; twice running, they fail.
        last_progress, stalls = time.monotonic(), 0
        killed = False  # this pool's processes were killed here, not lost to a crash

        def submit(item: tuple[int, str], alone: bool) -> None:
            if self._executor is None:
                self._executor = self._new_executor()
            free = set(range(len(self._slots) // 2)) - {j.slot for j in in_flight.values()}
            slot = min(free)
            self._slots[2 * slot + 1] = 0.0
            try:
                size = os.path.getsize(item[1])
            except OSError:
                size = 0  # the job reports the file's problem itself
            limit = decode_time_limit(size, whole_file)
            future = self._executor.submit(_run_job, slot, self._handoff_dir(), job, item[1], *args)
            in_flight[future] = _Job(item[0], item[1], alone, slot, size, limit)

        try:
            while in_flight or suspects or retry or not exhausted:
                item, alone = None, False
                try:
                    if suspects and not in_flight:
                        item, alone = suspects.popleft(), True
                        submit(item, True)
                    while not suspects and len(in_flight) < self.workers * _JOBS_PER_WORKER:
                        item, alone = (retry.popleft() if retry else next(jobs, None)), False
                        if item is None:
                            exhausted = True
                            break
                        submit(item, False)
                    item = None
                except BrokenProcessPool:
                    # A worker died since the executor last ran a job for us; the job being
                    # submitted never ran. The jobs in flight fail below, as from a crash.
                    (suspects if alone else retry).appendleft(item)
                    if not in_flight:
                        self._discard_executor()
                        continue
                done, _ = cf.wait(in_flight, timeout=_WATCH_INTERVAL_S, return_when=cf.FIRST_COMPLETED)
                timed_out |= self._kill_overdue(in_flight, timed_out)
                killed = killed or bool(timed_out)
                now = time.monotonic()
                if self._any_running(in_flight) or any(not isinstance(f.exception(), BrokenProcessPool) for f in done):
                    last_progress, stalls = now, 0
                elif in_flight and not killed and now - last_progress > DECODE_LIMIT_BASE_S:
                    last_progress, stalls, killed = now, stalls + 1, True
                    self._kill_workers()
                finished: list[tuple[int, str, R | AudioDecodeError]] = []
                crashed = False
                innocent = killed
                for future in done:
                    outcome, lost = self._settle(future, in_flight.pop(future), timed_out, innocent, stalls)
                    crashed = crashed or lost
                    finished += [outcome] if outcome is not None else []
                if crashed:
                    # Every job still in flight was lost with the processes.
                    for future, item in list(in_flight.items()):
                        outcome, _ = self._settle(future, item, timed_out, innocent, stalls, lost_anyway=True)
                        finished += [outcome] if outcome is not None else []
                    in_flight.clear()
                    timed_out.clear()
                    killed = False
                    self._discard_executor()
                for index, path, outcome in finished:
                    if outcome is _RETRY:
                        retry.append((index, path))
                    elif outcome is _SUSPECT:
                        suspects.append((index, path))
                finished = [f for f in finished if f[2] is not _RETRY and f[2] is not _SUSPECT]
                for k, result in enumerate(finished, 1):
                    self.in_flight = len(in_flight) + len(suspects) + len(retry) + len(finished) - k
                    yield result
        finally:
            for future in in_flight:
                future.cancel()
            while not all(f.done() for f in in_flight):
                cf.wait(in_flight, timeout=_WATCH_INTERVAL_S)
                timed_out |= self._kill_overdue(in_flight, timed_out)
            if any(f.exception() is not None for f in in_flight if not f.cancelled()):
                self._discard_executor()
            self.in_flight = 0

    def _kill_overdue(self, in_flight: dict[cf.Future, _Job], timed_out: set[cf.Future]) -> set[cf.Future]:
        """Kill the worker of each running job past its limit; returns those jobs' futures."""
        now, killed = time.monotonic(), set()
        for future, item in in_flight.items():
            pid, started = self._slots[2 * item.slot], self._slots[2 * item.slot + 1]
            if future in timed_out or future.done() or not started or now - started <= item.limit:
                continue
            _kill(int(pid))
            killed.add(future)
        return killed

    def _settle(
        self,
        future: cf.Future,
        item: _Job,
        timed_out: set[cf.Future],
        innocent: bool,
        stalls: int,
        lost_anyway: bool = False,
    ) -> tuple[tuple[int, str, Any] | None, bool]:
        """(the job's result, or its failure, or `_RETRY` / `_SUSPECT` to queue it again; whether
        the processes were lost). lost_anyway: the job was in flight when the processes ended."""
        try:
            if future.done():
                result = future.result()
                return (item.index, item.path, result.take() if isinstance(result, _Handoff) else result), False
        except (BrokenProcessPool, cf.CancelledError):
            pass
        if not lost_anyway and not future.done():
            raise AssertionError("only finished jobs are settled")
        if future in timed_out:
            reason = (
                f"decoding took longer than {item.limit:.0f} s, the limit for a file of {item.size / 1e6:.1f} MB; "
                "its decoder process was stopped"
            )
            return (item.index, item.path, AudioDecodeError(item.path, reason)), True
        if stalls > 1:
            reason = f"no decoder process took this file within {DECODE_LIMIT_BASE_S:.0f} s, twice"
            return (item.index, item.path, AudioDecodeError(item.path, reason)), True
        if item.alone and not innocent:
            return (item.index, item.path, AudioDecodeError(item.path, _CRASH_REASON)), True
        # Workers killed here (a job past its limit, a stall) are no crash: the jobs beside are innocent.
        return (item.index, item.path, _RETRY if innocent else _SUSPECT), True

    def _any_running(self, in_flight: dict[cf.Future, _Job]) -> bool:
        return any(self._slots[2 * item.slot + 1] for item in in_flight.values())

    def _kill_workers(self) -> None:
        """Kill every worker process (SIGKILL: stopped ones too); the executor then breaks."""
        for pid in list(getattr(self._executor, "_processes", None) or {}):
            _kill(pid)

    def close(self) -> None:
        """Stop the worker processes (idle ones exit; one that does not within a few seconds,
        e.g. a stopped process, is killed)."""
        if self._executor is not None:
            self._stop(self._executor)
            self._executor = None
        if self._handoff is not None:
            shutil.rmtree(self._handoff, ignore_errors=True)  # arrays of jobs lost with their workers
            self._handoff = None

    @staticmethod
    def _stop(executor: cf.ProcessPoolExecutor) -> None:
        # The executor's own table of its processes: the only way to reach a stuck one.
        pids = list(getattr(executor, "_processes", None) or {})
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + _CLOSE_GRACE_S
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.02)
        for pid in pids:
            _kill(pid)

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class _Handoff:
    """An array a worker left in a file for the caller (`_run_job`), instead of in the pipe."""

    path: str

    def take(self) -> np.ndarray:
        """The array; its file is removed."""
        try:
            return np.load(self.path)
        finally:
            os.unlink(self.path)


# Bytes a pipe writes in one piece (POSIX PIPE_BUF is at least 512; Linux's is 4096).
_ATOMIC_MESSAGE_BYTES = 512


def _run_job(slot: int, handoff_dir: str, job: Callable[..., R], path: str, *args: Any) -> Any:
    """In a worker: `_guarded` job, its start and end marked in the caller's table at `slot`.

    An array result is saved in `handoff_dir` and a `_Handoff` naming it comes back instead:
    the executor's result pipe must only carry messages the kernel writes whole. A worker
    killed in the middle of sending a large result leaves half a message in the pipe, and the
    executor's reader thread then waits for the rest forever: no crash is ever noticed and the
    run hangs. Errors are small already (their reason and detail are capped to keep them so).
    """
    if _job_slots is not None:
        _job_slots[2 * slot] = os.getpid()
        _job_slots[2 * slot + 1] = time.monotonic()
    try:
        result = _guarded(job, path, *args)
        if isinstance(result, AudioDecodeError):
            # The reason first; the detail (the codec's own words, for a debug log) gets the rest.
            reason = result.reason[: _ATOMIC_MESSAGE_BYTES // 2]
            detail = result.detail[: _ATOMIC_MESSAGE_BYTES // 2 - len(reason)]
            return AudioDecodeError(result.path, reason, detail)
        if isinstance(result, np.ndarray):
            try:
                fd, handoff = tempfile.mkstemp(suffix=".npy", dir=handoff_dir)
                with os.fdopen(fd, "wb") as f:
                    np.save(f, result)
                return _Handoff(handoff)
            except OSError:
                pass  # no room in the folder: through the pipe after all
        return result
    finally:
        if _job_slots is not None:
            _job_slots[2 * slot + 1] = 0.0


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
# What `_settle` gives for a job lost with its processes: run it again as usual, or alone.
_RETRY, _SUSPECT = object(), object()
