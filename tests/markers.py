"""Skip markers for tests whose data or tools may be absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "manifest.csv").is_file(), reason="../shared/data is absent")
