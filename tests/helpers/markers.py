"""Skips for tests whose data or tools may be absent, each with its reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The project's shared data set (clips and manifest.csv): beside the checkout, or where
# GENRECLASS_DATA points (a clone made elsewhere runs the real-data tests too).
SHARED_DATA = Path(os.environ.get("GENRECLASS_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "manifest.csv").is_file(),
    reason=f"the shared data set is absent ({SHARED_DATA}; set GENRECLASS_DATA)",
)
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
