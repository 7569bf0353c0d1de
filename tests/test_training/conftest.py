from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from audio_factory import write_audio

# musicnn's reference features (librosa) are a tool's, not the wheel's: the parity tests import
# them from beside the converter that writes the references they are checked against.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "musicnn_convert"))


def synth(kind: str, seconds: float, seed: int, sr: int = 22050) -> np.ndarray:
    """Three easily told apart 'genres': low tones, bright noise, clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if kind == "Tone":
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 300) * t)
    elif kind == "Noise":
        y = np.diff(rng.normal(0, 0.2, t.size + 1))  # high-passed white noise
    else:
        y = np.zeros(t.size)
        y[:: int(sr * rng.uniform(0.1, 0.2))] = 0.9
    return y.astype(np.float32)[:, None]


@pytest.fixture(scope="session")
def genre_folder(tmp_path_factory) -> Path:
    """ROOT/<Genre>/*.{wav,flac}: three labels, eight 5-second tracks each."""
    root = tmp_path_factory.mktemp("genres")
    for g, kind in enumerate(("Tone", "Noise", "Clicks")):
        (root / kind).mkdir()
        for i in range(8):
            ext = ".flac" if i % 2 else ".wav"
            write_audio(root / kind / f"{kind.lower()}{i}{ext}", synth(kind, 5.0, seed=100 * g + i), 22050)
    return root
