"""Processes as the kernel sees them, read from /proc (Linux): the tree below a process, a
process's state and environment; and a decode job that hangs its own worker, as a stuck
decoder would."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from genre_model import FrontendConfig, track_features


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, parent, ...); None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def parent_of(pid: int) -> int:
    """The parent's pid, or -1 once `pid` is gone."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else -1


def state_of(pid: int) -> str:
    """The kernel's one-letter state (R, S, T for stopped, Z, ...), or "gone"."""
    fields = _stat_fields(pid)
    return fields[0] if fields else "gone"


def exists(pid: int) -> bool:
    """Whether `pid` still has an entry in /proc (a zombie not yet reaped has one)."""
    return Path(f"/proc/{pid}").exists()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return descendants(pid, depth=1)


def descendants(pid: int, depth: int | None = None) -> list[int]:
    """Process ids below `pid` (children, grandchildren, ... up to `depth` generations)."""
    parents = {int(entry): parent_of(int(entry)) for entry in os.listdir("/proc") if entry.isdigit()}
    found, frontier, generation = [], [pid], 0
    while frontier and (depth is None or generation < depth):
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
        generation += 1
    return found


def environment(pid: int) -> dict[str, str]:
    """The environment `pid` started with ({} once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {os.fsdecode(key): os.fsdecode(value) for key, value in pairs}


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """True once `pid` no longer exists (reaped), within `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not exists(pid):
            return True
        time.sleep(0.02)
    return False


def decoder_pids(timeout_s: float = 10.0, count: int = 1) -> list[int]:
    """The decoder pool's processes: the children of the forkserver, itself a child of this
    process (the resource tracker, also a child, has none). Waits until `count` exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        mine = set(descendants(os.getpid()))
        kids = [p for p in mine if parent_of(p) in mine]
        if len(kids) >= count or time.monotonic() > deadline:
            return sorted(kids)
        time.sleep(0.02)


def features_or_stop(path: str, frontend: FrontendConfig, max_windows: int | None) -> np.ndarray:
    """`track_features`, except that a file whose name contains ``hang`` stops the worker
    process decoding it (SIGSTOP), mid-job: a decoder that never returns."""
    if "hang" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGSTOP)
    return track_features(path, frontend, max_windows)
