"""Saving verdicts on a thread of their own, while the next tracks are decoded and classified.

A safe tag write copies the file and waits for the disk (`tags.save`): about 20 ms for a
4-minute MP3 and 60 ms for a 40 MB FLAC, as long as classifying a track with the fast model.
Done in the loop that gathers results, that wait would stall inference; on one background
thread it overlaps with it. Saves still happen one at a time and in the order they were
queued (an album's tracks before the album), and their outcomes are handed back to the
caller's thread (`collect`), which does all the counting and reporting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

# Saves that may wait at once: enough to ride out a slow file, few enough that a stop
# (Ctrl-C) finishes within a second or so.
QUEUE_DEPTH = 4


class SaveQueue:
    """Runs save jobs in order on one thread (`background`) or at once in the caller's.

    put(job, done): `job()` runs on the saving thread; `done(result)` then runs on the caller's
    thread at its next `collect` or `drain`. An exception from a job (the library database
    cannot be written) stops the queue: later jobs are dropped, and `collect`/`drain` raise it.
    """

    def __init__(self, background: bool) -> None:
        self._finished: queue.SimpleQueue[tuple[Callable[[Any], None], Any]] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._jobs: queue.Queue | None = None
        if background:
            self._jobs = queue.Queue(QUEUE_DEPTH)
            self._thread = threading.Thread(target=self._work, name="genreclass-saves", daemon=True)
            self._thread.start()

    def put(self, job: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Queue `job` (waits while `QUEUE_DEPTH` jobs wait); without a thread, run it now."""
        self._raise()
        if self._jobs is None:
            done(job())
            return
        self._jobs.put((job, done))

    def collect(self) -> None:
        """Hand back the outcomes of the jobs done so far (their `done` runs here)."""
        while True:
            try:
                done, result = self._finished.get_nowait()
            except queue.Empty:
                break
            done(result)
        self._raise()

    def drain(self) -> None:
        """Wait until every queued job is done, then `collect`."""
        if self._jobs is not None:
            self._jobs.join()
        self.collect()

    def close(self) -> None:
        """`drain`, then end the thread."""
        try:
            self.drain()
        finally:
            if self._jobs is not None:
                self._jobs.put(None)
                self._thread.join()
                self._jobs = None

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _work(self) -> None:
        assert self._jobs is not None
        while True:
            entry = self._jobs.get()
            try:
                if entry is None:
                    return
                if self._error is None:  # after a failure, the rest is dropped
                    job, done = entry
                    try:
                        self._finished.put((done, job()))
                    except BaseException as exc:
                        self._error = exc
            finally:
                self._jobs.task_done()
