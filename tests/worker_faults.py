"""Harness for decoder-process faults: the process tree from /proc, and a decode job that
stops its own worker (SIGSTOP) at a chosen file, as a hung decoder would."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from genre_model import FrontendConfig, track_features


def descendants(pid: int) -> list[int]:
    """Process ids below `pid` (children, grandchildren, ...), read from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def decoder_pids(timeout_s: float = 10.0, count: int = 1) -> list[int]:
    """The pool's decoder processes: the children of the forkserver, itself a child of this
    process (the resource tracker, also a child, has none). Waits until `count` exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        mine = set(descendants(os.getpid()))
        kids = [p for p in mine if _parent(p) in mine]
        if len(kids) >= count or time.monotonic() > deadline:
            return sorted(kids)
        time.sleep(0.02)


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """True once `pid` no longer exists (reaped), within `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.02)
    return False


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def features_or_stop(path: str, frontend: FrontendConfig, max_windows: int | None) -> np.ndarray:
    """`track_features`, except that a file whose name contains ``hang`` stops the worker
    process decoding it (SIGSTOP), mid-job: a decoder that never returns."""
    if "hang" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGSTOP)
    return track_features(path, frontend, max_windows)
