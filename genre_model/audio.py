"""Audio decoding: any file beets handles -> mono float32 at a given sample rate.

libsndfile (through soundfile) reads wav, aiff, flac, ogg/vorbis, opus and mp3 and can seek,
so only the requested excerpts are decoded. Anything it cannot open (m4a/aac, wma, ...)
goes through one streaming ffmpeg process that keeps only the requested excerpts, so
memory stays bounded by the excerpts even for an hour-long file. What the codecs print
themselves never reaches the terminal (`genre_model.codec_messages`): a failure is said in
words, with their messages as its detail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Sequence

import numpy as np
import soundfile
import soxr

from genre_model.codec_messages import CodecMessages
from genre_model.containers import ogg_ends_cleanly, scan_mpeg
from genre_model.errors import AudioDecodeError

# Extra source samples decoded on each side of an excerpt so the resampler's edge
# transient falls outside the samples we keep.
_RESAMPLE_MARGIN_S = 0.02

# libsndfile's messages that say nothing to a listener: what it reports when a codec inside it
# (libmpg123, libFLAC, libvorbis) gives up on the data, or a seek into damaged data fails.
_UNHELPFUL_LIBSNDFILE_MESSAGES = frozenset(
    {
        "Unspecified internal error.",
        "Internal psf_fseek() failed.",
        "Error : parameters OK, but psf_seek() failed.",
        "Supported file format but file is malformed.",
    }
)
# The names users know formats by, from libsndfile's (format, subtype); by format alone, else.
_FORMAT_NAMES = {("OGG", "VORBIS"): "Ogg Vorbis", ("OGG", "OPUS"): "Opus", ("OGG", "FLAC"): "Ogg FLAC"}


def _truncation_tolerance(info: AudioInfo) -> float:
    """Seconds at the declared end that may be missing (0.5 s, or 2 % for long files whose
    length the header only estimates, e.g. a VBR MP3 without a Xing header)."""
    return max(0.5, 0.02 * info.duration)


def _required_end(info: AudioInfo, excerpt_end: float) -> float:
    """Second up to which an excerpt ending at `excerpt_end` must have decoded audio.

    Every excerpt must come back whole; only the last `_truncation_tolerance` seconds of the
    declared length may be missing. The tolerance is never spent elsewhere: a long track cut
    in half has whole excerpts missing, and those would be classified as silence.
    """
    return min(excerpt_end, info.duration - _truncation_tolerance(info))


def _truncated(path: str, info: AudioInfo, ends_at: float) -> AudioDecodeError:
    return AudioDecodeError(
        path,
        f"truncated or damaged: the audio stops at {ends_at:.1f} s of the {info.duration:.1f} s its header declares",
    )


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What is known about a file before decoding: duration in seconds, native rate in Hz."""

    duration: float
    sample_rate: int
    channels: int
    backend: str  # "soundfile" or "ffmpeg"
    format_name: str = ""  # as users know it ("MP3", "FLAC", "Ogg Vorbis"); "" when unknown


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Duration, sample rate and channel count of `path`; raises `AudioDecodeError`."""
    path = os.fspath(path)
    _check_readable(path)
    try:
        # What a codec prints while the file is opened is dropped: a file libsndfile cannot
        # open goes to ffprobe, whose verdict is the one reported.
        with CodecMessages(), soundfile.SoundFile(_native(path)) as f:
            if f.frames > 0 and f.samplerate > 0:
                name = _FORMAT_NAMES.get((f.format, f.subtype), f.format)
                info = AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels, "soundfile", name)
                container = f.format
            else:
                info = None
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        info = None
    if info is None:
        return _ffprobe(path)
    try:
        if container == "MP3":
            return _mpeg_checked(path, info)
        if container == "OGG" and not ogg_ends_cleanly(_native(path)):
            raise AudioDecodeError(
                path,
                f"truncated or damaged: the Ogg stream stops at {info.duration:.1f} s without its end-of-stream page",
            )
    except OSError as exc:
        raise AudioDecodeError(path, f"cannot read file: {exc.strerror or exc}") from exc
    return info


def _mpeg_checked(path: str, info: AudioInfo) -> AudioInfo:
    """`info` of an MP3 with its length taken from its frames when it has no length header."""
    scan = scan_mpeg(_native(path))
    if scan is None or scan.has_length_header:
        return info
    if scan.ends_inside_frame and not scan.trailing_tag:
        # Without a length header an MP3 does not say how long it was; but a file cut at a
        # random byte stops inside a frame (all but ~1 cut in 400), and nothing follows it.
        # A short last frame followed by a tag is an encoder's flaw of one frame, not a cut.
        raise AudioDecodeError(
            path,
            f"truncated or damaged: the audio stops inside an MPEG frame at {scan.duration:.1f} s "
            "and no tag follows it (a file without a length header, cut short)",
        )
    if info.duration >= scan.duration - _truncation_tolerance(info):
        # The guess from the file size counted a cover or other tags as audio: too long, and
        # the audio would seem to stop early. libsndfile still reads and seeks the frames right.
        return dataclasses.replace(info, duration=scan.duration)
    # libsndfile guessed too short (a VBR file starting quietly) and reads no further than its
    # guess; ffmpeg decodes to the end. Without ffmpeg, the part libsndfile reads is heard.
    if shutil.which("ffmpeg") is None:
        return info
    return dataclasses.replace(info, duration=scan.duration, backend="ffmpeg")


def read_excerpts(
    path: str | os.PathLike[str],
    info: AudioInfo,
    starts: Sequence[float],
    duration: float,
    sample_rate: int,
) -> np.ndarray:
    """Decode excerpts of `duration` seconds starting at `starts` (seconds), mono, resampled.

    returns: float32 array (len(starts), round(duration * sample_rate)); an excerpt that runs
    past the end of the file is zero-padded. Raises `AudioDecodeError`.
    """
    path = os.fspath(path)
    n_out = int(round(duration * sample_rate))
    said = CodecMessages()
    try:
        if info.backend == "soundfile":
            with said:
                return _read_soundfile(path, info, starts, duration, sample_rate, n_out)
        return _read_ffmpeg(path, info, starts, duration, sample_rate, n_out)
    except AudioDecodeError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise _decoding_failed(path, info, exc, said.lines) from exc


def _decoding_failed(path: str, info: AudioInfo, exc: Exception, codec_lines: list[str]) -> AudioDecodeError:
    """The error for a file whose audio data libsndfile could not decode: the reason in words,
    libsndfile's message and the codec's own lines as its detail."""
    message = str(exc).strip()
    detail = "; ".join([f"libsndfile: {message}", *(f"codec: {line}" for line in codec_lines)])
    data = f"the {info.format_name} data" if info.format_name else "the audio data"
    if isinstance(exc, OSError):
        return AudioDecodeError(path, f"cannot read file: {exc.strerror or exc}", detail)
    # "Truncated or damaged", as the other failures of this kind: a cut FLAC fails here too.
    words = "" if message in _UNHELPFUL_LIBSNDFILE_MESSAGES else f" ({message})"
    return AudioDecodeError(path, f"truncated or damaged: libsndfile could not decode {data}{words}", detail)


def _native(path: str) -> str | bytes:
    """`path` as the C library wants it: on POSIX the name's own bytes. soundfile encodes a str
    path as strict UTF-8, which fails on a name that is not UTF-8 (Python holds its odd bytes
    as surrogates, e.g. b"\\xff" as "\\udcff"); on Windows it needs the str."""
    return path if os.name == "nt" else os.fsencode(path)


def _check_readable(path: str) -> None:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise AudioDecodeError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise AudioDecodeError(path, "file is empty (0 bytes)")


def _to_mono(block: np.ndarray) -> np.ndarray:
    # block: (n_samples, channels) -> (n_samples,); averaging keeps the level of centred sources.
    # A matrix-vector product is ~50x faster than mean(axis=1) over a short channel axis.
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    return block @ np.full(block.shape[1], 1.0 / block.shape[1], dtype=np.float32)


def _resample_trim(mono: np.ndarray, src_rate: int, dst_rate: int, skip_s: float, n_out: int) -> np.ndarray:
    """Resample `mono`, drop `skip_s` seconds of leading margin, return exactly n_out samples."""
    if src_rate != dst_rate and mono.size:
        mono = soxr.resample(mono, src_rate, dst_rate, quality="HQ").astype(np.float32, copy=False)
    skip = int(round(skip_s * dst_rate))
    out = mono[skip : skip + n_out]
    if out.size < n_out:
        out = np.pad(out, (0, n_out - out.size))
    return out


def _read_soundfile(
    path: str, info: AudioInfo, starts: Sequence[float], duration: float, sample_rate: int, n_out: int
) -> np.ndarray:
    out = np.zeros((len(starts), n_out), dtype=np.float32)
    src = info.sample_rate
    with soundfile.SoundFile(_native(path)) as f:
        for i, start in enumerate(starts):
            first = max(0.0, start - _RESAMPLE_MARGIN_S)
            offset = f.seek(int(first * src))
            n_read = int(np.ceil((start - first + duration + _RESAMPLE_MARGIN_S) * src))
            block = f.read(n_read, dtype="float32", always_2d=True)
            decoded_to = (offset + len(block)) / src
            # One sample of slack: seek/read positions are rounded to whole samples.
            if decoded_to < _required_end(info, start + duration) - 1 / src:
                raise _truncated(path, info, decoded_to)
            out[i] = _resample_trim(_to_mono(block), src, sample_rate, start - first, n_out)
    return out


def _ffmpeg_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AudioDecodeError("", f"{name} is not installed; it is needed for formats libsndfile cannot read")
    return found


def _ffprobe(path: str) -> AudioInfo:
    try:
        binary = _ffmpeg_binary("ffprobe")
    except AudioDecodeError as exc:
        raise AudioDecodeError(path, f"unsupported by libsndfile and {exc.reason}") from None
    cmd = [binary, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels:format=duration", "-of", "json", path]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    # ffprobe repeats the file name in its messages, in the file system's bytes: decoded the way
    # Python decodes names, so that the name can be recognised and cut off below.
    stdout, stderr = os.fsdecode(proc.stdout), os.fsdecode(proc.stderr)
    try:
        data = json.loads(stdout or "{}")
        stream = data["streams"][0]
        duration = float(data["format"]["duration"])
        info = AudioInfo(duration, int(stream["sample_rate"]), int(stream["channels"]), "ffmpeg")
    except (KeyError, IndexError, ValueError, TypeError):
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "no audio stream found"
        reason = reason.removeprefix(f"{path}: ")  # ffprobe names the file; the caller already does
        raise AudioDecodeError(path, f"not a readable audio file ({reason})") from None
    if not duration > 0:
        raise AudioDecodeError(path, "audio stream has no duration")
    return info


def _read_ffmpeg(
    path: str, info: AudioInfo, starts: Sequence[float], duration: float, sample_rate: int, n_out: int
) -> np.ndarray:
    # One process decodes the file once, streaming; we keep only the samples of the excerpts,
    # so memory is bounded by the excerpts, not the file.
    cmd = [_ffmpeg_binary("ffmpeg"), "-v", "error", "-nostdin", "-i", path, "-map", "0:a:0",
           "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-"]  # fmt: skip
    out = np.zeros((len(starts), n_out), dtype=np.float32)
    begin = [int(round(s * sample_rate)) for s in starts]
    last_needed = max(b + n_out for b in begin) if begin else 0
    chunk_samples = 1 << 16
    pos = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while pos < last_needed:
            raw = proc.stdout.read(chunk_samples * 4)
            if not raw:
                break
            chunk = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4")
            for i, b in enumerate(begin):
                lo, hi = max(b, pos), min(b + n_out, pos + chunk.size)
                if lo < hi:
                    out[i, lo - b : hi - b] = chunk[lo - pos : hi - pos]
            pos += chunk.size
        proc.kill()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if pos == 0:
        raise AudioDecodeError(path, f"ffmpeg decoded no audio ({stderr.strip() or 'no output'})")
    if pos / sample_rate < _required_end(info, last_needed / sample_rate) - 1 / sample_rate:
        raise _truncated(path, info, pos / sample_rate)
    return out
