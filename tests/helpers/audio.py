"""Real audio for the tests: generated sounds encoded in every format, and the pitch heard back.

Every signal the tests synthesise is made here, so that a "low tone" or "hiss" is the same
sound in each test that uses one; `dominant_hz` is the one way a test hears a pitch.
"""

from __future__ import annotations

import hashlib
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
    """A sine tone of `freq` Hz, shape (n_samples, channels) float32."""
    t = np.arange(int(seconds * sr)) / sr
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def stepped_tone(seconds: int, sr: int, start_hz: float = 200.0, step_hz: float = 20.0) -> np.ndarray:
    """A tone whose pitch encodes time: `start_hz` + `step_hz` per whole second, shape (n_samples, 1)."""
    t = np.arange(seconds * sr) / sr
    phase = 2 * np.pi * np.cumsum(start_hz + step_hz * np.floor(t)) / sr
    return (0.3 * np.sin(phase)).astype(np.float32)[:, None]


def white_noise(seconds: float, sr: int, rng: np.random.Generator, level: float = 0.1) -> np.ndarray:
    """Gaussian white noise of standard deviation `level`, shape (n_samples, 1) float32."""
    return (level * rng.standard_normal((int(seconds * sr), 1))).astype(np.float32)


def genre_sound(kind: str, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A sound of one of the tests' made-up genres, shape (n_samples, 1) float32; `rng` draws its
    pitch or noise, so a seed gives the same track every time.

    For retraining on a library: "drone" (a 90-250 Hz tone), "chime" (3-6 kHz, quieter),
    "hiss" (white noise). For the training pipeline's genre folder: "Tone" (150-300 Hz),
    "Noise" (high-passed white noise), "Clicks" (an impulse every 0.1-0.2 s).
    """
    if kind == "drone":
        return tone(rng.uniform(90, 250), seconds, sr)
    if kind == "chime":
        return tone(rng.uniform(3000, 6000), seconds, sr, amplitude=0.2)
    if kind == "hiss":
        return white_noise(seconds, sr, rng)
    if kind == "Tone":
        return tone(rng.uniform(150, 300), seconds, sr)
    n = int(seconds * sr)
    if kind == "Noise":
        return np.diff(rng.normal(0, 0.2, n + 1)).astype(np.float32)[:, None]
    if kind == "Clicks":
        y = np.zeros(n, np.float32)
        y[:: int(sr * rng.uniform(0.1, 0.2))] = 0.9
        return y[:, None]
    raise ValueError(f"no such sound: {kind}")


# Where encoded files are kept for reuse (`keep_encoded_files`); None: every file is encoded anew.
_encoded: Path | None = None


def keep_encoded_files(folder: Path | None) -> None:
    """Keep each file `write_audio` encodes in `folder` and copy it from there when the same
    audio is asked for again: most tests write the same few tones, and encoding MP3 or Opus
    costs a tenth of a second or more. The copies are byte-identical; None stops it."""
    global _encoded
    _encoded = folder


def write_audio(path: Path, audio: np.ndarray, sr: int = 44100) -> Path:
    """Encode `audio` (n_samples, channels) by `path`'s extension; Opus is written at 48 kHz."""
    path = Path(path)
    if _encoded is None:
        return _encode(path, audio, sr)
    key = hashlib.sha256(np.ascontiguousarray(audio).tobytes())
    key.update(f"{audio.shape} {audio.dtype} {sr}".encode())
    kept = _encoded / f"{key.hexdigest()}{path.suffix.lower()}"
    if not kept.exists():
        _encode(kept, audio, sr)
    shutil.copyfile(kept, path)
    return path


def _encode(path: Path, audio: np.ndarray, sr: int) -> Path:
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
    """A `freq` Hz tone encoded by `path`'s extension."""
    return write_audio(path, tone(freq, seconds, sr, channels), sr)


def write_long_tone(path: Path, freq: float, seconds: int, sr: int = 44100) -> Path:
    """A FLAC tone of `seconds` (whole minutes), written a minute at a time: the test never holds it whole."""
    minute = tone(freq, 60, sr)
    with soundfile.SoundFile(path, "w", sr, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 60):
            f.write(minute)
    return path


def ffmpeg_tone(path: Path, freq: float, seconds: float, sr: int, *codec: str) -> Path:
    """A tone encoded by ffmpeg with the `codec` arguments, for containers libsndfile does not write."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate={sr}:duration={seconds}",
         *codec, str(path)],
        check=True,
    )  # fmt: skip
    return path


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


def write_damaged_mp3(path: Path, seconds: float = 20.0) -> Path:
    """An MP3 as ffmpeg writes one (white noise, 44.1 kHz stereo, 128 kbit/s, with its Info
    header) whose audio is overwritten with random bytes, 4000 at a time, at 30, 50 and 70 % of
    the file: more than libmpg123 skips to find the next frame header (1024 bytes), so it gives
    up ("Giving up resync") and libsndfile fails the read. The header stays, so the file opens
    and its length is believed. (libsndfile's own MP3s, damaged so, just stop early instead.)"""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=white:r=44100:a=0.1",
         "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", str(path)],
        check=True,
    )  # fmt: skip
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for fraction in (0.3, 0.5, 0.7):
        start = int(len(data) * fraction)
        data[start : start + 4000] = rng.bytes(4000)
    path.write_bytes(bytes(data))
    return path


def add_cover(path: Path, n_bytes: int) -> Path:
    """Embed a front cover (ID3v2 APIC) of `n_bytes` bytes at the start of an MP3."""
    from mutagen.id3 import APIC, ID3

    rng = np.random.default_rng(0)
    tag = ID3()
    tag.add(APIC(encoding=0, mime="image/jpeg", type=3, desc="", data=rng.bytes(n_bytes)))
    tag.save(path)
    return path


def dominant_hz(samples: np.ndarray, sr: int) -> float:
    """The strongest frequency of mono `samples` (n_samples,), in Hz, from a Hann-windowed spectrum."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / sr)[spectrum.argmax()])


def heard_genre(path: Path) -> str:
    """The tiny model's right answer for a test tone, from its first second's spectrum rather than
    from the model: "Low" under 1 kHz, else "High"."""
    audio, sr = soundfile.read(path, frames=44100, always_2d=True)
    return "Low" if dominant_hz(audio[:, 0], sr) < 1000 else "High"
