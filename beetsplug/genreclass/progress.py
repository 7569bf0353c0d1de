"""How a long run shows it is alive: a progress bar (or periodic log lines), and stopping cleanly."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

# Seconds between progress lines when the output is not a terminal.
PROGRESS_EVERY_S = 5.0


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Turn SIGINT/SIGTERM into a request to stop between tracks, so no tag write is cut in half.

    A second signal stops at once.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Progress:
    """Progress of a run on stderr: on a terminal, a bar redrawn in place with tracks/s and the
    time left; elsewhere (pipes, log files) one log line every `PROGRESS_EVERY_S` seconds.

    Results printed on stdout while the bar is drawn must call `clear` first.

    Hand-written rather than tqdm or enlighten: beets itself has no progress bar to reuse; tqdm
    piped into a log writes carriage-return frames, not the periodic plain lines logs want, and
    clearing the bar before each result on stdout is a few lines here; neither library is then
    worth a new runtime dependency.
    """

    BAR_WIDTH = 30
    REDRAW_S = 0.1

    def __init__(self, total: int, log, stream: TextIO | None = None) -> None:
        self.total, self.log = total, log
        self.stream = stream or sys.stderr
        self.on_terminal = total > 0 and self.stream.isatty()
        self.started = self.last = time.monotonic()
        self.drawn = False
        self.done = 0
        self.logged = False  # a periodic line was logged: the run's end gets one too

    def rate(self, done: int) -> float:
        """Tracks per second since the run started."""
        return done / max(time.monotonic() - self.started, 1e-9)

    def update(self, done: int) -> None:
        """`done` of `total` tracks are decoded (and judged)."""
        now = time.monotonic()
        self.done = done
        if self.on_terminal:
            if now - self.last < self.REDRAW_S and done < self.total:
                return
            rate = self.rate(done)
            filled = self.BAR_WIDTH * done // self.total
            left = (self.total - done) / rate if rate > 0 else 0.0
            self.stream.write(
                f"\r\x1b[Kgenreclass: [{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] {done}/{self.total} tracks decoded, "
                f"{rate:.1f} tracks/s, {int(left // 60)}:{int(left % 60):02d} left"
            )
            self.stream.flush()
            self.drawn, self.last = True, now
        elif now - self.last > PROGRESS_EVERY_S and done < self.total:
            self._log_line(done)
            self.last = now

    def _log_line(self, done: int) -> None:
        self.log.info("{}/{} tracks decoded ({:.1f} tracks/s)", done, self.total, self.rate(done))
        self.logged = True

    def finish(self) -> None:
        """The run is over: erase the bar; in a log that had progress lines, one last line, so
        that its last word is not a count short of the total (a run of 43 ending on '36/43')."""
        self.clear()
        if self.logged and not self.on_terminal:
            self._log_line(self.done)

    def clear(self) -> None:
        """Erase the bar so that a line starts on a clean line (it is redrawn on the next update)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False
