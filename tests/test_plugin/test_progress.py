"""The run's progress display: a bar on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import io
import logging
import re
import time

from beets import logging as beets_logging

from beetsplug.genreclass import progress as genreclass


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_shows_count_rate_and_time_left(monkeypatch):
    stream = Terminal()
    progress = genreclass.Progress(200, beets_logging.getLogger("test"), stream)
    assert progress.on_terminal
    monkeypatch.setattr(progress, "started", time.monotonic() - 10.0)  # 50 tracks in 10 s
    monkeypatch.setattr(progress, "last", progress.started)
    progress.update(50)
    line = stream.getvalue().split("\r\x1b[K")[-1]
    assert "[#######.......................] 50/200 tracks decoded" in line
    assert "5.0 tracks/s" in line and "0:30 left" in line
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K") and not progress.drawn


def test_without_a_terminal_a_log_line_every_few_seconds(monkeypatch, caplog):
    stream = io.StringIO()
    progress = genreclass.Progress(10, beets_logging.getLogger("test.progress"), stream)
    assert not progress.on_terminal
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.update(1)  # too soon for a line
        monkeypatch.setattr(progress, "last", time.monotonic() - genreclass.PROGRESS_EVERY_S - 1)
        progress.update(2)
    assert stream.getvalue() == ""
    assert len(caplog.records) == 1
    assert re.fullmatch(r"2/10 tracks decoded \(\d+\.\d tracks/s\)", caplog.records[0].getMessage())


def test_a_log_that_had_progress_lines_ends_on_the_total(monkeypatch, caplog):
    """Periodic lines alone would leave a log ending on '36/43' for a run of 43."""
    progress = genreclass.Progress(43, beets_logging.getLogger("test.progress"), io.StringIO())
    with caplog.at_level(logging.INFO, logger="test.progress"):
        monkeypatch.setattr(progress, "last", time.monotonic() - genreclass.PROGRESS_EVERY_S - 1)
        progress.update(36)
        progress.update(43)  # too soon after the last line for another
        progress.finish()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["36/43 tracks decoded", "43/43 tracks decoded"]
    quick = genreclass.Progress(3, beets_logging.getLogger("test.progress"), io.StringIO())
    with caplog.at_level(logging.INFO, logger="test.progress"):
        quick.update(3)
        quick.finish()  # a run too short for any line gets none at its end either
    assert len(caplog.records) == 2
