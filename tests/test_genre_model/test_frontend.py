"""The numpy log-mel front end against librosa, over several parameter sets."""

import librosa
import numpy as np
import pytest

from genre_model import FrontendConfig, log_mel, mel_filterbank
from genre_model.frontend import musicnn_frontend

# Max abs difference allowed, in dB, between our log-mel and librosa's on the same audio.
TOLERANCE_DB = 0.01

PARAMS = [
    FrontendConfig(),
    FrontendConfig(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, fmin=20.0, fmax=11025.0),
    FrontendConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, fmin=50.0, fmax=7600.0, window_seconds=1.0),
    FrontendConfig(
        sample_rate=44100, n_fft=4096, hop_length=1024, n_mels=96, fmin=0.0, fmax=16000.0, window_seconds=2.0
    ),
]


def librosa_log_mel(y: np.ndarray, c: FrontendConfig) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
        fmin=c.fmin, fmax=c.fmax, center=False, power=2.0, window="hann", htk=False, norm="slaney",
    )  # fmt: skip
    return librosa.power_to_db(power, ref=1.0, amin=c.amin, top_db=None)


@pytest.mark.parametrize("config", PARAMS, ids=lambda c: f"{c.sample_rate}-{c.n_fft}-{c.hop_length}-{c.n_mels}")
def test_matches_librosa(config):
    rng = np.random.default_rng(0)
    t = np.arange(config.window_samples) / config.sample_rate
    signals = [
        rng.normal(0, 0.1, config.window_samples),
        0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.normal(size=t.size),
        np.where(rng.random(t.size) < 0.001, 1.0, 0.0),  # clicks
    ]
    for y in signals:
        y = y.astype(np.float32)
        ours = log_mel(y, config)
        theirs = librosa_log_mel(y, config)
        assert ours.shape == theirs.shape == (config.n_mels, config.n_frames)
        assert np.abs(ours - theirs).max() < TOLERANCE_DB


@pytest.mark.parametrize("config", PARAMS[:2])
def test_filterbank_matches_librosa(config):
    ref = librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    )
    np.testing.assert_allclose(mel_filterbank(config), ref, rtol=1e-4, atol=1e-7)


def test_batched_equals_single_and_silence_is_finite():
    c = FrontendConfig()
    batch = np.random.default_rng(1).normal(0, 0.1, (3, c.window_samples)).astype(np.float32)
    batch[2] = 0.0
    out = log_mel(batch, c)
    assert out.shape == (3, c.n_mels, c.n_frames)
    np.testing.assert_allclose(out[1], log_mel(batch[1], c), atol=1e-4)
    assert np.all(out[2] == pytest.approx(10 * np.log10(c.amin)))


def test_window_crop_equals_whole_track_frames():
    # Uncentred STFT: frames of a window starting at k*hop equal frames k.. of the whole track.
    c = FrontendConfig()
    y = np.random.default_rng(2).normal(0, 0.1, 5 * c.sample_rate).astype(np.float32)
    whole = log_mel(y, c)
    k = 37
    window = log_mel(y[k * c.hop_length : k * c.hop_length + c.window_samples], c)
    np.testing.assert_allclose(window, whole[:, k : k + c.n_frames], atol=1e-3)


def test_config_roundtrip_and_validation():
    c = PARAMS[1]
    assert FrontendConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError):
        FrontendConfig.from_dict({**c.to_dict(), "colour": 1})
    with pytest.raises(ValueError):
        FrontendConfig(fmax=20000.0)


def test_musicnn_features_match_librosa_as_musicnn_computes_them():
    # musicnn: librosa.feature.melspectrogram on the whole track (centred, 512/256, 96 bands),
    # then log10(1 + 10000 * mel). Away from the track's edges, its 187-frame patch starting at
    # frame k equals our uncentred window starting at sample k * 256 - 256.
    c = musicnn_frontend()
    assert c.n_frames == 187 and c.n_mels == 96
    rng = np.random.default_rng(2)
    t = np.arange(10 * c.sample_rate) / c.sample_rate
    track = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.normal(size=t.size)
    track = track.astype(np.float32)
    mel = librosa.feature.melspectrogram(y=track, sr=16000, hop_length=256, n_fft=512, n_mels=96)
    theirs = np.log10(1 + 10000 * mel.astype(np.float32))
    for k in (1, 100, 400):
        start = k * c.hop_length - c.n_fft // 2
        ours = log_mel(track[start : start + c.window_samples], c)
        np.testing.assert_allclose(ours, theirs[:, k : k + 187], atol=1e-4, rtol=1e-4)
    assert log_mel(np.zeros(c.window_samples, np.float32), c).max() == 0.0  # silence is 0, not -inf


def test_model_files_without_the_compression_keys_read_as_db():
    old = {k: v for k, v in FrontendConfig().to_dict().items() if k not in ("compression", "log1p_gain")}
    assert FrontendConfig.from_dict(old) == FrontendConfig()
    with pytest.raises(ValueError, match="compression"):
        FrontendConfig(compression="cube-root")
