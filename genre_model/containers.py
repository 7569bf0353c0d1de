"""What a file's container says about its length, read from its bytes (no decoding).

libsndfile trusts an MP3's length header (Xing/Info/VBRI) when it has one; without one it
guesses the length from the file size (tags included) and the first frame's bitrate, and
reads no further than its guess. `scan_mpeg` walks the frame headers instead, for the
exact length and for whether the file stops inside a frame. An Ogg stream ends with a page
flagged end-of-stream (the Ogg spec requires it); `ogg_ends_cleanly` looks for it, since
libsndfile takes an Ogg file's length from its last page, whatever that page is.
"""

from __future__ import annotations

import dataclasses
import mmap
import os

# kbit/s by bitrate index (0 = free format, which we cannot walk), per (MPEG-1?, layer).
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Hz by sample-rate index, per version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5; 1 is reserved).
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# The first frame is looked for this far into the audio: past it the file is not an MP3.
_SYNC_SEARCH_BYTES = 1 << 20
_OGG_MAX_PAGE = 27 + 255 + 255 * 255


@dataclasses.dataclass(frozen=True)
class MpegScan:
    """An MP3's frames as its bytes show them.

    has_length_header: the first frame is a Xing/Info/VBRI header giving the frame count, so
    libsndfile's length is exact and the other fields are not filled in (0 / False).
    samples: per channel, in the whole frames found; sample_rate: Hz.
    ends_inside_frame: the last frame is cut off by the end of the audio.
    trailing_tag: an ID3v1, APEv2 or Lyrics3v2 tag follows the audio, so the file's end is intact.
    """

    has_length_header: bool
    samples: int = 0
    sample_rate: int = 0
    ends_inside_frame: bool = False
    trailing_tag: bool = False

    @property
    def duration(self) -> float:
        """Seconds of audio in the whole frames."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0


def _frame(data: mmap.mmap | bytes, pos: int) -> tuple[tuple[int, int, int], int, int] | None:
    """The frame header at `pos`: ((version bits, layer, sample rate), length in bytes, samples)."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer_bits = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate, rate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000, _RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    if layer == 1:
        return (version, layer, rate), (12 * bitrate // rate + padding) * 4, 384
    per_frame = 1152 if layer == 2 or mpeg1 else 576
    return (version, layer, rate), per_frame // 8 * bitrate // rate + padding, per_frame


def _id3v2_end(data: mmap.mmap, pos: int = 0) -> int:
    """Offset after the ID3v2 tags at `pos` (several may follow each other)."""
    while data[pos : pos + 3] == b"ID3" and pos + 10 <= len(data):
        size = 0
        for byte in data[pos + 6 : pos + 10]:  # syncsafe: 7 bits a byte
            size = (size << 7) | (byte & 0x7F)
        pos += 10 + size + (10 if data[pos + 5] & 0x10 else 0)  # footer flag
    return pos


def _trailing_tags_start(data: mmap.mmap) -> int:
    """Offset where the tags at the end of the file (ID3v1, Lyrics3v2, APEv2) begin."""
    end = len(data)
    if end >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    if end >= 15 and data[end - 9 : end] == b"LYRICS200":
        try:
            end -= 15 + int(data[end - 15 : end - 9])
        except ValueError:
            pass
    if end >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
        size = int.from_bytes(data[end - 20 : end - 16], "little")  # items and footer
        has_header = int.from_bytes(data[end - 12 : end - 8], "little") & (1 << 31)
        end -= size + (32 if has_header else 0)
    return max(end, 0)


def _has_length_header(data: mmap.mmap, pos: int, key: tuple[int, int, int], mono: bool) -> bool:
    version = key[0]
    side_info = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    xing = pos + 4 + side_info
    if data[xing : xing + 4] in (b"Xing", b"Info"):
        return bool(int.from_bytes(data[xing + 4 : xing + 8], "big") & 1)  # the frame count is there
    return data[pos + 36 : pos + 40] == b"VBRI"


def scan_mpeg(path: str | bytes | os.PathLike) -> MpegScan | None:
    """Walk the MPEG audio frames of `path`; None if no two consecutive frames are found
    (not an MP3 we can read this way, e.g. free-format bitrate).

    Only frame headers are read (a few ms for a 4-minute file, 0.1 s for an hour at 128 kbit/s). A frame
    that does not follow where the previous one ends is searched for further on.
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start, end = _id3v2_end(data), _trailing_tags_start(data)
        pos, first = start, None
        while pos < min(end, start + _SYNC_SEARCH_BYTES):
            pos = data.find(b"\xff", pos, end)
            if pos < 0:
                return None
            first = _frame(data, pos)
            if first is not None:
                following = _frame(data, pos + first[1])
                if following is not None and following[0] == first[0]:
                    break
            first, pos = None, pos + 1
        if first is None:
            return None
        key = first[0]
        if _has_length_header(data, pos, key, data[pos + 3] >> 6 == 3):
            return MpegScan(has_length_header=True)
        samples, ends_inside = 0, False
        while pos < end:
            frame = _frame(data, pos)
            if frame is None or frame[0] != key:
                if end - pos < 4:  # a header itself cut off
                    ends_inside = True
                    break
                pos = data.find(b"\xff", pos + 1, end)  # damage: look for the next frame
                if pos < 0:
                    break
                continue
            if pos + frame[1] > end:
                ends_inside = True
                break
            samples += frame[2]
            pos += frame[1]
        return MpegScan(False, samples, key[2], ends_inside, end < len(data))


def ogg_ends_cleanly(path: str | bytes | os.PathLike) -> bool:
    """True if the last Ogg page of `path` is whole and flagged end-of-stream.

    A file cut short ends inside a page, or (cut exactly between pages) on a page without
    the flag. Bytes after the last page (a tag some programs append) are allowed.
    """
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 2 * _OGG_MAX_PAGE))
        tail = f.read()
    pos = len(tail)
    while True:
        pos = tail.rfind(b"OggS", 0, pos)
        if pos < 0:
            return False
        # Version 0 and no unknown flag bits: a page header, not "OggS" inside audio data.
        if pos + 27 <= len(tail) and tail[pos + 4] == 0 and tail[pos + 5] & ~7 == 0:
            break
        if pos + 27 > len(tail):  # a header itself cut off
            return False
    n_segments = tail[pos + 26]
    if pos + 27 + n_segments > len(tail):
        return False
    body = sum(tail[pos + 27 : pos + 27 + n_segments])
    return pos + 27 + n_segments + body <= len(tail) and bool(tail[pos + 5] & 4)
