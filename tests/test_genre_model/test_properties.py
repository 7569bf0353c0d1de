"""Property-based checks across the decoder / front-end boundary."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genre_model import AudioDecodeError, FrontendConfig, decode_windows, log_mel

FE = FrontendConfig()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seconds=st.floats(0.0, 8.0),
    sample_rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
    channels=st.integers(1, 8),
    amplitude=st.floats(0.0, 4.0),
    max_windows=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_any_wav_gives_finite_windows_of_the_right_shape_or_a_typed_error(
    seconds, sample_rate, channels, amplitude, max_windows, seed
):
    audio = amplitude * np.random.default_rng(seed).uniform(-1, 1, (int(seconds * sample_rate), channels))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        soundfile.write(path, audio.astype(np.float32), sample_rate, subtype="FLOAT")
        try:
            windows = decode_windows(path, FE, max_windows)
        except AudioDecodeError as exc:
            assert exc.path == str(path) and exc.reason
            return
    assert windows.ndim == 2 and windows.shape[1] == FE.window_samples
    assert 1 <= windows.shape[0] <= max_windows
    mel = log_mel(windows, FE)
    assert mel.shape == (windows.shape[0], FE.n_mels, FE.n_frames)
    assert np.all(np.isfinite(mel))
