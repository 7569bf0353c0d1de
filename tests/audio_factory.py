"""Small real audio files for the tests: tones, noise and chirps encoded in every format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile

# soundfile (format, subtype) per extension; m4a goes through ffmpeg.
FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", "PCM_16"),
}


def tone(freq: float, seconds: float, sr: int = 44100, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    """A sine tone, shape (n_samples, channels) float32."""
    t = np.arange(int(seconds * sr)) / sr
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def write_audio(path: Path, audio: np.ndarray, sr: int = 44100) -> Path:
    """Encode `audio` (n_samples, channels) by `path`'s extension; Opus is written at 48 kHz."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".m4a":
        if not shutil.which("ffmpeg"):
            raise RuntimeError("ffmpeg needed for m4a")
        wav = path.with_suffix(".src.wav")
        soundfile.write(wav, audio, sr)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "96k", str(path)], check=True
        )
        wav.unlink()
        return path
    fmt, subtype = FORMATS[ext]
    if ext == ".opus" and sr != 48000:
        import soxr

        audio = soxr.resample(audio, sr, 48000).astype(np.float32)
        sr = 48000
    soundfile.write(path, audio, sr, format=fmt, subtype=subtype)
    return path


def write_tone(path: Path, freq: float, seconds: float = 8.0, sr: int = 44100, channels: int = 1) -> Path:
    return write_audio(path, tone(freq, seconds, sr, channels), sr)


def write_headerless_mp3(path: Path, seconds: float = 20.0, vbr: bool = False) -> Path:
    """An MP3 with no Xing/Info header (ffmpeg's -write_xing 0), so nothing in it states its
    length: a 300 Hz tone over pink noise, 44.1 kHz stereo, 128 kbit/s CBR or VBR (-q:a 2)."""
    rate = ["-q:a", "2"] if vbr else ["-b:a", "128k"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=44100:duration={seconds}",
         "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=44100:a=0.05", "-filter_complex", "amix=inputs=2",
         "-ac", "2", "-c:a", "libmp3lame", *rate, "-write_xing", "0", str(path)],
        check=True,
    )  # fmt: skip
    return path


def add_cover(path: Path, n_bytes: int) -> Path:
    """Embed a front cover (ID3v2 APIC) of `n_bytes` bytes at the start of an MP3."""
    from mutagen.id3 import APIC, ID3

    rng = np.random.default_rng(0)
    tag = ID3()
    tag.add(APIC(encoding=0, mime="image/jpeg", type=3, desc="", data=rng.bytes(n_bytes)))
    tag.save(path)
    return path
