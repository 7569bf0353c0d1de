"""The one front end: waveform windows -> log-mel spectrograms, in numpy.

Training and inference both call `log_mel` with the `FrontendConfig` stored in the model
file, so a model always sees features computed exactly as during its training.

The STFT is *not* centred (no padding at the edges): the frames of a window starting at
sample ``k * hop_length`` of a track are then identical to frames ``k ..`` of the whole
track's spectrogram, which lets training cut random windows from one cached spectrogram.

Written in numpy on purpose rather than with librosa or torch.stft: every decoding worker
imports this module, and numpy alone keeps their start-up cheap (librosa brings numba and
scipy; torch is no part of the runtime). The tests check it against
``librosa.feature.melspectrogram``.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the log-mel front end; they travel inside every model file.

    sample_rate: Hz the audio is resampled to before analysis.
    n_fft: STFT frame length in samples (Hann window of the same length).
    hop_length: STFT hop in samples.
    n_mels: number of mel bands (Slaney mel scale, Slaney area normalisation, as librosa).
    fmin, fmax: band edges of the mel filterbank in Hz.
    window_seconds: length of one analysis window in seconds.
    amin: power floor before the log, so silence gives a finite value (10*log10(amin) dB).
    compression: how mel power becomes the network's input. "db": 10*log10(max(amin, power)).
        "log1p": log10(1 + log1p_gain * power), musicnn's compression (its networks were
        trained on it; values >= 0, silence 0).
    log1p_gain: the gain inside "log1p" (musicnn: 10000).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    window_seconds: float = 3.0
    amin: float = 1e-10
    compression: str = "db"
    log1p_gain: float = 10000.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"front-end sizes must be positive: {self}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2: {self}")
        if self.window_samples < self.n_fft:
            raise ValueError(f"a window must hold at least one STFT frame: {self}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")

    @property
    def window_samples(self) -> int:
        """Length of one analysis window in samples at `sample_rate`."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """STFT frames in one window: 1 + (window_samples - n_fft) // hop_length."""
        return frames_for(self.window_samples, self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontendConfig:
        """Build from a model file's metadata; unknown or missing keys raise `ValueError`.

        Files written before the compression keys existed lack them: they used "db".
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        missing = names - set(data) - set(_ADDED_LATER)
        data = {**_ADDED_LATER, **data}
        if unknown or missing:
            raise ValueError(f"front-end keys: unknown {sorted(unknown)}, missing {sorted(missing)}")
        return cls(**data)


# Compressions of mel power that `log_mel` knows.
COMPRESSIONS = ("db", "log1p")
# Keys added after models were shipped, with the value that reproduces those models.
_ADDED_LATER = {"compression": "db", "log1p_gain": 10000.0}


def musicnn_frontend() -> FrontendConfig:
    """musicnn's features (Pons & Serra 2019): 16 kHz, 512-point FFT, hop 256, 96 Slaney bands up
    to 8 kHz, log10(1 + 10000 x); 187-frame patches.

    musicnn cuts its patches from a centred STFT of the whole track; a patch away from the
    track's edges equals the uncentred STFT of the 512 + 186 * 256 = 48128 samples (3.008 s)
    under it, which is what our windows are.
    """
    return FrontendConfig(
        sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, fmin=0.0, fmax=8000.0,
        window_seconds=48128 / 16000, compression="log1p", log1p_gain=10000.0,
    )  # fmt: skip


def frames_for(n_samples: int, config: FrontendConfig) -> int:
    """Number of STFT frames in `n_samples` samples (0 when shorter than one frame)."""
    if n_samples < config.n_fft:
        return 0
    return 1 + (n_samples - config.n_fft) // config.hop_length


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel = np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0), mel)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


@lru_cache(maxsize=8)
def mel_filterbank(config: FrontendConfig) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), float32, area-normalised."""
    fft_hz = np.linspace(0.0, config.sample_rate / 2, config.n_fft // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(config.fmax), config.n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: each filter has unit area, so band energies do not grow with width.
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    # Periodic Hann (as scipy.signal.get_window('hann', n, fftbins=True)), the STFT convention.
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    window.flags.writeable = False
    return window


def log_mel(samples: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """Log-compressed mel power spectrogram.

    samples: float waveform(s) at `config.sample_rate`, shape (..., n_samples) with
        n_samples >= n_fft.
    returns: float32 array, shape (..., n_mels, frames_for(n_samples)), values
        10*log10(max(amin, mel power)) in dB (reference power 1.0, no top_db clipping), or
        log10(1 + log1p_gain * mel power) with ``compression="log1p"``.
    """
    samples = np.asarray(samples, dtype=np.float32)
    n_samples = samples.shape[-1]
    n_frames = frames_for(n_samples, config)
    if n_frames == 0:
        raise ValueError(f"{n_samples} samples hold no STFT frame of {config.n_fft}")
    # (..., n_frames, n_fft) view of overlapping frames, no copy.
    frames = np.lib.stride_tricks.sliding_window_view(samples, config.n_fft, axis=-1)[..., :: config.hop_length, :][
        ..., :n_frames, :
    ]
    spectrum = np.fft.rfft(frames * _hann(config.n_fft), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2  # (..., n_frames, n_fft//2+1)
    mel = np.matmul(power.astype(np.float32), mel_filterbank(config).T)  # (..., n_frames, n_mels)
    if config.compression == "log1p":
        # In float32: musicnn's float16 product overflows to inf for loud bands.
        compressed = np.log10(1.0 + np.float32(config.log1p_gain) * mel)
    else:
        compressed = 10.0 * np.log10(np.maximum(mel, config.amin))
    return np.ascontiguousarray(np.swapaxes(compressed, -1, -2), dtype=np.float32)
