"""musicnn's own input features: log-compressed mel patches, as musicnn 0.1.0 computes them.

This is *not* the project's front end (`genre_model.log_mel`: dB, not centred, other sizes);
the pretrained musicnn networks only make sense on the features they were trained on. The
recipe follows `musicnn.extractor.batch_data`, with one deliberate change: the log is taken
in float32 where musicnn casts to float16 first (under numpy 2, `10000 * mel` overflows
float16 to inf for loud frames; for the rest float16 only adds rounding).

Imports numpy, librosa and musicnn's constants (`training.models.musicnn.constants`) only, so the
TensorFlow converter (convert.py beside this file) and the torch tests compute patches with this one
function. It lives here, not in `training/`, because only they use it and librosa is no dependency of
the wheel.
"""

from __future__ import annotations

import librosa
import numpy as np

from training.models.musicnn.constants import HOP_LENGTH, LOG1P_GAIN, N_FFT, N_MELS, PATCH_FRAMES, SAMPLE_RATE


def musicnn_log_mel(audio: np.ndarray) -> np.ndarray:
    """Log-compressed mel spectrogram of a mono waveform, musicnn's recipe.

    audio: float waveform at SAMPLE_RATE (16 kHz), shape (n_samples,).
    returns: float32 array (n_mels=96, n_frames), n_frames = 1 + n_samples // 256 (centred
        STFT), values log10(1 + 10000 * mel power) with librosa's Slaney mel filterbank.
    """
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT, n_mels=N_MELS
    )
    return np.log10(1.0 + LOG1P_GAIN * mel.astype(np.float32)).astype(np.float32)


def musicnn_patch(log_mel: np.ndarray, start_frame: int) -> np.ndarray:
    """One (n_mels=96, 187)-frame patch of `musicnn_log_mel`'s output, starting at `start_frame`.

    Raises ValueError when the spectrogram holds fewer than start_frame + 187 frames.
    """
    if start_frame < 0 or start_frame + PATCH_FRAMES > log_mel.shape[-1]:
        raise ValueError(f"frames {start_frame}..{start_frame + PATCH_FRAMES} outside 0..{log_mel.shape[-1]}")
    return np.ascontiguousarray(log_mel[:, start_frame : start_frame + PATCH_FRAMES])


def load_audio(path: str) -> np.ndarray:
    """Decode a file to mono float32 at 16 kHz with librosa (soundfile + soxr_hq), as musicnn does.

    returns: (n_samples,) float32 waveform.
    """
    audio, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    return audio.astype(np.float32)
