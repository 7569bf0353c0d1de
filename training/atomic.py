"""Files written whole or not at all: the one temp-file-then-rename of the training side."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `target` (same folder, so the rename is atomic; same suffix, so
    writers that go by it still work) to write in the block; renamed over `target` when the block
    ends, removed when it raises. An interrupted run leaves the old file whole, or none."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
