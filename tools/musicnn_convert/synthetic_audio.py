"""Deterministic music-like test signals for the musicnn parity references.

Each signal is a few seconds of mono audio at 16 kHz built from fixed seeds, so the stored
reference patches can be regenerated bit for bit. They are there to drive every part of the
networks (tonal, percussive, noisy, near-silent input), not to sound like any genre.
"""

from __future__ import annotations

import numpy as np

from training.models.musicnn.constants import SAMPLE_RATE  # convert.py puts the repository on sys.path

SECONDS = 3.5  # a little over one 3-s patch, so the patch can start away from the padded edge


def _time() -> np.ndarray:
    return np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE


def _note(freq: float, t: np.ndarray, harmonics: int = 6, decay: float = 1.5) -> np.ndarray:
    # Harmonic tone with 1/k partials and an exponential decay, a crude plucked string.
    tone = sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, harmonics + 1))
    return tone * np.exp(-decay * t)


def _chords(t: np.ndarray, roots: list[float], minor: bool) -> np.ndarray:
    third = 2 ** ((3 if minor else 4) / 12)
    step = t.size // len(roots)
    y = np.zeros_like(t)
    for i, root in enumerate(roots):
        seg = t[: t.size - i * step]
        for ratio in (1.0, third, 1.5):
            y[i * step :] += _note(root * ratio, seg)
    return y


def _drums(t: np.ndarray, rng: np.random.Generator, bpm: float) -> np.ndarray:
    y = np.zeros_like(t)
    beat = int(SAMPLE_RATE * 60 / bpm)
    kick_t = np.arange(int(0.15 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * kick_t)) * kick_t) * np.exp(-20 * kick_t)
    snare = rng.normal(0, 0.5, int(0.1 * SAMPLE_RATE)) * np.exp(-40 * kick_t[: int(0.1 * SAMPLE_RATE)])
    hat = np.diff(rng.normal(0, 0.3, int(0.03 * SAMPLE_RATE) + 1))
    for n, start in enumerate(range(0, t.size, beat // 2)):
        parts = [hat] + ([kick] if n % 4 == 0 else []) + ([snare] if n % 4 == 2 else [])
        for part in parts:
            end = min(t.size, start + part.size)
            y[start:end] += part[: end - start]
    return y


def synthetic_signals() -> dict[str, np.ndarray]:
    """Eight named test signals, each (SECONDS * 16000,) float32 in about [-1, 1]."""
    t = _time()
    rng = np.random.default_rng(1234)
    bass = 0.5 * _note(55.0, t % 0.5, harmonics=3, decay=4.0)
    signals = {
        "major_chords": _chords(t, [261.6, 349.2, 392.0, 261.6], minor=False),
        "minor_chords": _chords(t, [220.0, 293.7, 329.6, 220.0], minor=True),
        "noise_bursts": rng.normal(0, 0.3, t.size) * (np.sin(2 * np.pi * 2 * t) > 0.3),
        "drums_120bpm": _drums(t, np.random.default_rng(7), bpm=120),
        "bass_and_drums": bass + _drums(t, np.random.default_rng(8), bpm=95),
        "sweep": 0.4 * np.sin(2 * np.pi * (100 * t + 1000 * t**2)),
        "band_mix": 0.3 * _chords(t, [196.0, 246.9, 293.7, 196.0], minor=False)
        + _drums(t, np.random.default_rng(9), bpm=140)
        + 0.05 * rng.normal(0, 1, t.size),
        "near_silence": 1e-4 * rng.normal(0, 1, t.size),
    }
    return {name: (y / max(1.0, float(np.abs(y).max()))).astype(np.float32) for name, y in signals.items()}
