"""Where to listen in a track, and the analysis windows cut there.

Rule for placement: a track holding ``k`` whole windows gets ``n = min(max_windows, k)``
windows. When all ``k`` fit (n == k) they tile the track contiguously, centred; otherwise the
track is cut into ``n`` equal segments and one window is taken at the centre of each, so
intros and outros weigh no more than the rest.

Rule for short tracks: a track shorter than one window but at least `MIN_TRACK_SECONDS`
long is zero-padded at the end to one window; a shorter one is rejected with
`AudioDecodeError`. A track whose decoded windows are digital silence is rejected too: there
is nothing to classify in it.
"""

from __future__ import annotations

import os

import numpy as np

from genre_model.audio import AudioInfo, probe, read_excerpts
from genre_model.errors import AudioDecodeError
from genre_model.frontend import FrontendConfig, log_mel

MIN_TRACK_SECONDS = 1.0
# Peak amplitude (full scale = 1.0) under which a track counts as digital silence (-120 dBFS).
SILENCE_PEAK = 1e-6


def window_starts(duration: float, window_seconds: float, max_windows: int | None) -> list[float]:
    """Start times in seconds of the windows to analyse in a track of `duration` seconds.

    max_windows: upper bound on the number of windows; None or 0 means every whole window.
    A track shorter than one window gives the single start 0.0 (it is padded later).
    """
    whole = int(duration // window_seconds)
    if whole <= 1:
        return [0.0] if whole == 0 else [max(0.0, (duration - window_seconds) / 2)]
    n = whole if not max_windows else min(max_windows, whole)
    if n == whole:
        offset = (duration - n * window_seconds) / 2
        return [offset + i * window_seconds for i in range(n)]
    segment = duration / n
    return [(i + 0.5) * segment - window_seconds / 2 for i in range(n)]


def decode_windows(
    path: str | os.PathLike[str],
    frontend: FrontendConfig,
    max_windows: int | None,
    info: AudioInfo | None = None,
) -> np.ndarray:
    """Decode the analysis windows of one file.

    returns: float32 waveforms, shape (n_windows, frontend.window_samples), mono at
    frontend.sample_rate. Raises `AudioDecodeError` for unreadable, too short or silent files.
    """
    info = info or probe(path)
    if info.duration < MIN_TRACK_SECONDS:
        raise AudioDecodeError(path, f"too short to classify: {info.duration:.2f} s < {MIN_TRACK_SECONDS} s")
    starts = window_starts(info.duration, frontend.window_seconds, max_windows)
    windows = read_excerpts(path, info, starts, frontend.window_seconds, frontend.sample_rate)
    if not np.all(np.isfinite(windows)):
        raise AudioDecodeError(path, "decoded audio contains NaN or infinite samples")
    if float(np.abs(windows).max(initial=0.0)) < SILENCE_PEAK:
        raise AudioDecodeError(path, "digital silence: nothing to classify")
    return windows


def track_features(path: str | os.PathLike[str], frontend: FrontendConfig, max_windows: int | None) -> np.ndarray:
    """Log-mel windows of one file, shape (n_windows, n_mels, n_frames), float32 dB."""
    return log_mel(decode_windows(path, frontend, max_windows), frontend)
