"""The saving thread: jobs in order, outcomes handed back on the caller's thread, a failure stops it."""

from __future__ import annotations

import threading
import time

import pytest

from beetsplug.genreclass.save_queue import SaveQueue


@pytest.mark.parametrize("background", [True, False])
def test_jobs_run_in_order_and_report_on_the_callers_thread(background):
    ran, reported = [], []
    saves = SaveQueue(background)
    for i in range(10):
        saves.put(lambda i=i: (time.sleep(0.001), ran.append((i, threading.current_thread().name)))[1] or i,
                  lambda result: reported.append((result, threading.current_thread().name)))  # fmt: skip
    saves.close()
    assert [i for i, _ in ran] == list(range(10))
    assert {name for _, name in ran} == {"genreclass-saves" if background else threading.current_thread().name}
    assert reported == [(i, threading.current_thread().name) for i in range(10)]


def test_a_failing_job_drops_the_rest_and_is_raised_to_the_caller():
    ran = []
    gate = threading.Event()
    saves = SaveQueue(background=True)
    saves.put(lambda: gate.wait(5), lambda _: None)  # the failure below is queued behind this one

    def fail():
        raise OSError("database or disk is full")

    saves.put(fail, lambda _: None)
    saves.put(lambda: ran.append("after"), lambda _: None)
    gate.set()
    with pytest.raises(OSError, match="disk is full"):
        saves.drain()
    saves.close()
    assert ran == []
