"""Property-based checks across the decoder / front-end boundary."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from genre_model import AudioDecodeError, FrontendConfig, decode_windows, log_mel
from genre_model.windows import MIN_TRACK_SECONDS

FE = FrontendConfig()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seconds=st.floats(0.0, 8.0),
    sample_rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
    channels=st.integers(1, 8),
    # Digital silence, or a level far above the silence threshold (1e-6): each has one right answer.
    amplitude=st.one_of(st.just(0.0), st.floats(0.01, 4.0)),
    max_windows=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
@example(seconds=5.0, sample_rate=44100, channels=2, amplitude=0.3, max_windows=4, seed=0)  # always: a plain valid file
def test_any_wav_gives_finite_windows_of_the_right_shape_or_the_error_its_content_calls_for(
    seconds, sample_rate, channels, amplitude, max_windows, seed
):
    n_samples = int(seconds * sample_rate)
    audio = amplitude * np.random.default_rng(seed).uniform(-1, 1, (n_samples, channels))
    duration = n_samples / sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        soundfile.write(path, audio.astype(np.float32), sample_rate, subtype="FLOAT")
        event("no samples" if n_samples == 0 else "too short" if duration < MIN_TRACK_SECONDS else
              "silence" if amplitude == 0.0 else "sound")  # fmt: skip
        if n_samples == 0:
            # No frames: libsndfile gives up and ffprobe (or its absence) says why.
            with pytest.raises(AudioDecodeError) as info:
                decode_windows(path, FE, max_windows)
            return
        if duration < MIN_TRACK_SECONDS:
            with pytest.raises(AudioDecodeError, match="too short") as info:
                decode_windows(path, FE, max_windows)
        elif amplitude == 0.0:
            with pytest.raises(AudioDecodeError, match="digital silence") as info:
                decode_windows(path, FE, max_windows)
        else:
            windows = decode_windows(path, FE, max_windows)  # a valid file with sound must decode
            info = None
    if info is not None:
        assert info.value.path == str(path)
        return
    # Every whole window, up to max_windows; a track shorter than one window is padded to one.
    assert windows.shape == (min(max_windows, max(1, int(duration // FE.window_seconds))), FE.window_samples)
    assert np.abs(windows).max() > 0
    mel = log_mel(windows, FE)
    assert mel.shape == (windows.shape[0], FE.n_mels, FE.n_frames)
    assert np.all(np.isfinite(mel))
