"""Decoding real encoded files into analysis windows."""

import os

import numpy as np
import pytest
from helpers.audio import dominant_hz, stepped_tone, tone, write_audio, write_tone
from helpers.markers import needs_ffmpeg

from genre_model import AudioDecodeError, FrontendConfig, decode_windows, probe, window_starts
from genre_model.windows import MIN_TRACK_SECONDS

FE = FrontendConfig()


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff"])
def test_every_format_decodes_to_mono_windows_at_model_rate(tmp_path, ext):
    path = write_audio(tmp_path / f"a{ext}", tone(440.0, 10.0, sr=44100, channels=2), 44100)
    windows = decode_windows(path, FE, max_windows=8)
    assert windows.dtype == np.float32
    assert windows.shape == (3, FE.window_samples)  # 10 s hold three whole 3 s windows
    for w in windows:
        assert abs(dominant_hz(w, FE.sample_rate) - 440.0) < 10
        assert 0.15 < np.abs(w).max() < 0.5


@needs_ffmpeg
def test_m4a_goes_through_ffmpeg(tmp_path):
    path = write_audio(tmp_path / "a.m4a", tone(1000.0, 7.0), 44100)
    assert probe(path).backend == "ffmpeg"
    windows = decode_windows(path, FE, max_windows=8)
    assert windows.shape == (2, FE.window_samples)
    assert abs(dominant_hz(windows[1], FE.sample_rate) - 1000.0) < 10


def test_windows_are_read_where_planned(tmp_path):
    # A 60 s file whose pitch encodes time: 200 Hz + 20 Hz per second. Each window must hold
    # the pitch of its planned start, which only a correct seek gives.
    sr = 22050
    seconds = 60
    path = write_audio(tmp_path / "steps.flac", stepped_tone(seconds, sr, start_hz=200.0, step_hz=20.0), sr)
    starts = window_starts(seconds, FE.window_seconds, 4)
    windows = decode_windows(path, FE, max_windows=4)
    assert windows.shape == (4, FE.window_samples)
    for start, w in zip(starts, windows, strict=True):
        second = np.floor(start) + 1  # the middle of the window falls in this second (roughly)
        expected = 200 + 20 * np.floor(start + FE.window_seconds / 2)
        assert abs(dominant_hz(w[FE.sample_rate : 2 * FE.sample_rate], FE.sample_rate) - expected) <= 20, second


def test_window_placement_rule():
    assert window_starts(2.0, 3.0, 8) == [0.0]  # shorter than one window: padded later
    assert window_starts(10.0, 3.0, 8) == pytest.approx([0.5, 3.5, 6.5])  # all fit: contiguous, centred
    starts = window_starts(240.0, 3.0, 4)
    assert starts == pytest.approx([28.5, 88.5, 148.5, 208.5])  # one per equal segment, centred
    assert len(window_starts(240.0, 3.0, None)) == 80


def test_short_track_is_padded_and_very_short_rejected(tmp_path):
    path = write_tone(tmp_path / "short.wav", 440.0, seconds=1.5)
    windows = decode_windows(path, FE, max_windows=8)
    assert windows.shape == (1, FE.window_samples)
    assert np.abs(windows[0, : FE.sample_rate]).max() > 0.1
    assert np.abs(windows[0, int(1.6 * FE.sample_rate) :]).max() == 0.0  # the padding
    tiny = write_tone(tmp_path / "tiny.wav", 440.0, seconds=MIN_TRACK_SECONDS / 2)
    with pytest.raises(AudioDecodeError, match="too short"):
        decode_windows(tiny, FE, max_windows=8)


def test_errors_name_the_file_and_the_cause(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(os.urandom(5000))
    silent = tmp_path / "silent.wav"
    write_audio(silent, np.zeros((5 * 44100, 1), np.float32))
    cases = {
        tmp_path / "missing.flac": "cannot read",
        empty: "empty",
        junk: "not a readable audio file",
        silent: "silence",
    }
    for path, reason in cases.items():
        with pytest.raises(AudioDecodeError, match=reason) as info:
            decode_windows(path, FE, max_windows=8)
        assert info.value.path == str(path)
        assert str(path) in str(info.value)
