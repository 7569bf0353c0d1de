"""Replace the genre frame of an MP3's ID3v2 tag, and nothing else, at the byte level.

mutagen (through MediaFile) re-encodes a whole ID3 tag when it saves one: an ID3v2.3 tag
becomes v2.4 (or the reverse with beets' ``id3v23``), v2.3-only frames (RVAD, TRDA, TSIZ,
TYER, ...) are converted or dropped, ID3v2.2 is upgraded, UTF-16 text becomes UTF-8, and an
ID3v1-only file gains a v2 copy of every v1 field. Here the tag is parsed only far enough to
find its frames; the genre frame (``TCON``, ``TCO`` in v2.2) is replaced and every other byte
of the tag, the audio and any ID3v1 tag is copied as it was. The tag keeps its version; a file
without an ID3v2 tag gets one holding only the genre frame.

Layouts (id3.org, ID3v2.2/2.3/2.4 structure): a 10-byte header ``ID3``, major, revision,
flags, size (4 syncsafe bytes, the tag without its header and footer); an optional extended
header (v2.3/v2.4, left to mutagen here); frames; zero padding; in v2.4 an optional 10-byte footer ``3DI``. A frame
header is 6 bytes in v2.2 (3-byte id, 3-byte size) and 10 in v2.3/v2.4 (4-byte id, 4-byte
size, syncsafe in v2.4, 2 flag bytes).
"""

from __future__ import annotations

import dataclasses
import re

from mutagen.id3 import TCON

# Tag header flags.
_UNSYNC = 0x80
_EXTENDED = 0x40  # v2.3/v2.4; in v2.2 the same bit means "compressed", which no tool uses
_FOOTER = 0x10  # v2.4

# Text encodings of ID3v2 text frames: 0 latin-1, 1 UTF-16 with BOM, 2 UTF-16BE, 3 UTF-8 (2 and 3 are v2.4 only).
_CODECS = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}
_NULS = {0: b"\x00", 1: b"\x00\x00", 2: b"\x00\x00", 3: b"\x00"}

# Padding given to a tag that has to grow, so that the next change fits without moving the audio.
GROWTH_PADDING = 1024


class ID3LayoutError(ValueError):
    """The tag uses a layout this module does not rewrite (the caller falls back to mutagen)."""


def _syncsafe(raw: bytes) -> int:
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
    return value


def _to_syncsafe(value: int, width: int = 4) -> bytes:
    if value >= 1 << (7 * width):
        raise ID3LayoutError(f"{value} bytes do not fit an ID3v2 size field")
    return bytes((value >> (7 * (width - 1 - i))) & 0x7F for i in range(width))


def _unsynchronise(data: bytes) -> bytes:
    """ID3v2 unsynchronisation: a 0x00 after every 0xFF that precedes 0x00 or 0xE0-0xFF, or ends the data."""
    data = re.sub(rb"\xff(?=[\x00\xe0-\xff])", b"\xff\x00", data)
    return data + b"\x00" if data.endswith(b"\xff") else data


@dataclasses.dataclass(frozen=True)
class ID3Tag:
    """An ID3v2 tag at the start of a file. size: its bytes in the file (header, body, footer)."""

    version: int  # major version: 2, 3 or 4
    flags: int
    body: bytes  # between header and footer, unsynchronisation undone for v2.2/v2.3
    size: int

    @property
    def genre_id(self) -> bytes:
        return b"TCO" if self.version == 2 else b"TCON"

    @property
    def _header_len(self) -> int:
        return 6 if self.version == 2 else 10

    def frames(self) -> list[tuple[bytes, int, int]]:
        """Every frame as (id, start, end) offsets in `body`; stops at padding or the end."""
        found, pos, end = [], 0, len(self.body)
        hlen = self._header_len
        id_len = 3 if self.version == 2 else 4
        while pos + hlen <= end:
            frame_id = self.body[pos : pos + id_len]
            if not re.fullmatch(rb"[A-Z0-9]+", frame_id):
                break  # padding (zeros) or garbage after the last frame
            raw_size = self.body[pos + id_len : pos + id_len + (3 if self.version == 2 else 4)]
            size = _syncsafe(raw_size) if self.version == 4 else int.from_bytes(raw_size, "big")
            if pos + hlen + size > end:
                raise ID3LayoutError(f"frame {frame_id.decode()} runs past the end of the tag")
            found.append((frame_id, pos, pos + hlen + size))
            pos += hlen + size
        return found


def tag_size(head: bytes) -> int:
    """Bytes of the ID3v2 tag a file starts with (header, body, footer), from its first 10
    bytes `head`; 0 when it has none."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    return 10 + _syncsafe(head[6:10]) + (10 if head[3] == 4 and head[5] & _FOOTER else 0)


def read_tag(data: bytes) -> ID3Tag | None:
    """The ID3v2 tag at the start of `data` (the file's first bytes, at least the whole tag),
    or None when the file has none. Raises `ID3LayoutError` for layouts not rewritten here."""
    if len(data) < 10 or data[:3] != b"ID3":
        return None
    version, flags = data[3], data[5]
    if version not in (2, 3, 4):
        raise ID3LayoutError(f"unknown ID3v2 version 2.{version}")
    if flags & _EXTENDED:
        # v2.2: compression; v2.3/v2.4: an extended header whose padding size and CRC would go stale.
        raise ID3LayoutError("compressed ID3v2.2 tag" if version == 2 else "ID3v2 tag with an extended header")
    if version == 4 and flags & _UNSYNC:
        raise ID3LayoutError("ID3v2.4 tag with unsynchronisation")  # per-frame flags; left to mutagen
    size = tag_size(data)
    if len(data) < size:
        raise ID3LayoutError("the ID3v2 tag runs past the end of the file")
    body = data[10 : 10 + _syncsafe(data[6:10])]
    if flags & _UNSYNC:
        body = body.replace(b"\xff\x00", b"\xff")
    return ID3Tag(version, flags, body, size)


def _encoding_for(genres: list[str], version: int, old_frame: bytes | None, header_len: int) -> int:
    """The old frame's text encoding when it can hold the new text, else the plainest that can:
    latin-1, then UTF-8 (v2.4) or UTF-16 (v2.2/v2.3, which have no UTF-8)."""
    text = "".join(genres)
    candidates = [0, 3 if version == 4 else 1]
    if old_frame is not None and len(old_frame) > header_len and old_frame[header_len] in _CODECS:
        old = old_frame[header_len]
        if version == 4 or old in (0, 1):
            candidates.insert(0, old)
    for encoding in candidates:
        try:
            text.encode(_CODECS[encoding])
        except UnicodeEncodeError:
            continue
        return encoding
    return candidates[-1]


def genre_frame(genres: list[str], version: int, old_frame: bytes | None = None) -> bytes:
    """A whole genre frame (header and text) for an ID3v2.`version` tag.

    Several genres are NUL-separated, as mutagen writes and reads them in every version, so
    that the file reads back as the list beets stores. Flags are cleared (the frame is new).
    """
    header_len = 6 if version == 2 else 10
    encoding = _encoding_for(genres, version, old_frame, header_len)
    text = _NULS[encoding].join(g.encode(_CODECS[encoding]) for g in genres)
    data = bytes([encoding]) + text
    if version == 2:
        return b"TCO" + len(data).to_bytes(3, "big") + data
    size = _to_syncsafe(len(data)) if version == 4 else len(data).to_bytes(4, "big")
    return b"TCON" + size + b"\x00\x00" + data


def _header(version: int, flags: int, body_len: int) -> bytes:
    return b"ID3" + bytes([version, 0, flags]) + _to_syncsafe(body_len)


def with_genres(data: bytes, genres: list[str], new_tag_version: int) -> bytes:
    """The bytes of the ID3v2 tag that `data` (the file's first bytes) should start with,
    followed by how many of those first bytes it replaces: ``(new_tag, old_tag_size)``.

    Only the genre frame changes; with no genres it is removed. A file without an ID3v2 tag
    gets an ID3v2.`new_tag_version` tag (3 or 4) holding the genre frame alone. The tag keeps
    its size when the new frame fits its padding, so the audio stays where it was.
    """
    tag = read_tag(data)
    if tag is None:
        if not genres:
            return b"", 0
        frame = genre_frame(genres, new_tag_version)
        return _header(new_tag_version, 0, len(frame) + GROWTH_PADDING) + frame + bytes(GROWTH_PADDING), 0
    frames = tag.frames()
    old = [(start, end) for frame_id, start, end in frames if frame_id == tag.genre_id]
    old_frame = tag.body[old[0][0] : old[0][1]] if old else None
    new_frame = genre_frame(genres, tag.version, old_frame) if genres else b""
    # The first genre frame is replaced where it stands (others dropped); a new one goes last.
    parts, pos, placed = [], 0, False
    frames_end = frames[-1][2] if frames else 0
    for start, end in old:
        parts += [tag.body[pos:start], b"" if placed else new_frame]
        pos, placed = end, True
    parts.append(tag.body[pos:frames_end])
    if not placed:
        parts.append(new_frame)
    content = b"".join(parts)
    flags = tag.flags
    if flags & _UNSYNC:
        content = _unsynchronise(content)
    if tag.flags & _FOOTER:  # v2.4 forbids padding beside a footer: the tag is exactly its content
        return _header(4, flags, len(content)) + content + b"3DI" + bytes([4, 0, flags]) + _to_syncsafe(
            len(content)
        ), tag.size
    old_body_len = tag.size - 10
    body_len = old_body_len if len(content) <= old_body_len else len(content) + GROWTH_PADDING
    return _header(tag.version, flags, body_len) + content + bytes(body_len - len(content)), tag.size


# ID3v1's genre byte indexes this list (with Winamp's extensions); 255 means none.
_V1_GENRES = {name.casefold(): i for i, name in enumerate(TCON.GENRES) if i < 255}


def v1_genre_byte(genres: list[str]) -> int:
    """The ID3v1 genre byte for `genres`: the index of the first one ID3v1 knows, else 255 (none)."""
    return next((_V1_GENRES[g.casefold()] for g in genres if g.casefold() in _V1_GENRES), 255)
