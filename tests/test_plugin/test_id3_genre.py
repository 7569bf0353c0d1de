"""Writing the genre into MP3s changes the genre frame alone: the ID3 version, every other
frame byte for byte (v2.3-only frames, UTF-16 text), an ID3v1 tag and the audio stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.audio import write_tone
from helpers.library import BeetsLibrary
from mutagen.id3 import ID3

from beetsplug.genreclass import id3_genre


def frame(frame_id: bytes, data: bytes) -> bytes:
    """One ID3v2.2 (3-byte id) or v2.3 (4-byte id) frame."""
    if len(frame_id) == 3:
        return frame_id + len(data).to_bytes(3, "big") + data
    return frame_id + len(data).to_bytes(4, "big") + b"\x00\x00" + data


def tag(version: int, frames: list[bytes], padding: int = 0) -> bytes:
    body = b"".join(frames) + bytes(padding)
    size = bytes((len(body) >> (7 * (3 - i))) & 0x7F for i in range(4))
    return b"ID3" + bytes([version, 0, 0]) + size + body


def utf16(text: str) -> bytes:
    return b"\x01" + text.encode("utf-16") + b"\x00\x00"


def parse_frames(data: bytes) -> tuple[int, list[tuple[bytes, bytes]], int]:
    """(version, [(frame id, whole frame bytes)], tag size) of the v2.2/v2.3 tag `data` starts with."""
    assert data[:3] == b"ID3"
    version = data[3]
    size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    pos, frames, id_len, head = 10, [], (3 if version == 2 else 4), (6 if version == 2 else 10)
    while pos + head <= size and data[pos : pos + 1] not in (b"\x00", b""):
        n = int.from_bytes(data[pos + id_len : pos + head - (0 if version == 2 else 2)], "big")
        frames.append((data[pos : pos + id_len], data[pos : pos + head + n]))
        pos += head + n
    return version, frames, size


# The frames a v2.3 file from a real ripper carries, several of which mutagen drops or converts.
V23_FRAMES = [
    frame(b"TIT2", utf16("Títle in UTF-16")),
    frame(b"TPE1", b"\x00Artist"),
    frame(b"TYER", b"\x001999"),
    frame(b"TRDA", b"\x00June 2nd"),
    frame(b"TSIZ", b"\x00123456"),
    frame(b"RVAD", bytes([3, 16, 0, 10, 0, 10, 0, 0, 0, 0])),
    frame(b"TCON", utf16("Rock")),
    frame(b"COMM", b"\x00eng\x00my notes"),
]
V22_FRAMES = [frame(b"TT2", b"\x00Old title"), frame(b"TCO", b"\x00(17)"), frame(b"TYE", b"\x001987")]


def audio_only(path: Path) -> bytes:
    """An MP3's frames without any ID3v2 tag (libsndfile writes none, but be sure)."""
    data = path.read_bytes()
    return data[parse_frames(data)[2] :] if data[:3] == b"ID3" else data


@pytest.fixture
def library(make_library) -> BeetsLibrary:
    # Low tones are "Low"; the map gives it a name ID3v1's genre list knows (Blues = 0).
    return make_library(map={"Low": "Blues"})


def make_mp3(beets: BeetsLibrary, name: str, head: bytes = b"", tail: bytes = b"") -> tuple[Path, bytes]:
    path = write_tone(beets.music / name, 200.0, seconds=5.0)
    audio = audio_only(path)
    path.write_bytes(head + audio + tail)
    return path, audio


def classify(beets: BeetsLibrary) -> None:
    beets.run("import", "-A", "-s", "-q", str(beets.music))
    result = beets.run("genreclass", "-w", "-f")  # -f: the files' own genres give way
    summary = result.stdout.splitlines()[-1]
    assert "failed" not in result.stderr and summary.startswith("genreclass: 1 track classified;"), result.stdout


@pytest.mark.parametrize("padding", [0, 512], ids=["no padding", "padding"])
def test_an_id3v23_tag_stays_v23_with_every_other_frame_byte_for_byte(library, padding):
    path, audio = make_mp3(library, "v23.mp3", tag(3, V23_FRAMES, padding))
    classify(library)
    data = path.read_bytes()
    version, frames, size = parse_frames(data)
    assert version == 3
    assert [f for f in frames if f[0] != b"TCON"] == [(f[:4], f) for f in V23_FRAMES if f[:4] != b"TCON"]
    genre = [f for i, f in frames if i == b"TCON"]
    assert genre == [frame(b"TCON", b"\x01" + "Blues".encode("utf-16"))]  # the file's own UTF-16 kept
    assert data[size:] == audio
    if padding:  # it fitted: the tag kept its size, so no audio byte moved
        assert size == len(tag(3, V23_FRAMES, padding))


def test_an_id3v22_tag_stays_v22(library):
    path, audio = make_mp3(library, "v22.mp3", tag(2, V22_FRAMES))
    classify(library)
    data = path.read_bytes()
    version, frames, size = parse_frames(data)
    assert version == 2
    assert frames == [(b"TT2", V22_FRAMES[0]), (b"TCO", frame(b"TCO", b"\x00Blues")), (b"TYE", V22_FRAMES[2])]
    assert data[size:] == audio


@pytest.mark.parametrize("id3v23", [False, True])
def test_an_id3v1_only_file_gains_only_a_genre_frame_and_its_v1_genre_byte(library, id3v23):
    library.settings["id3v23"] = id3v23
    v1 = b"TAG" + b"Title".ljust(30, b"\x00") + b"Artist".ljust(30, b"\x00") + bytes(30) + b"1999" + bytes(30) + b"\x11"
    path, audio = make_mp3(library, "v1.mp3", tail=v1)
    classify(library)
    data = path.read_bytes()
    version, frames, size = parse_frames(data)
    assert version == (3 if id3v23 else 4)
    assert [i for i, _ in frames] == [b"TCON"]
    assert data[size:-128] == audio
    assert data[-128:] == v1[:-1] + bytes([0])  # only the genre byte: 17 (Rock) -> 0 (Blues)


def test_several_genres_read_back_as_the_list_beets_stores(library):
    library.settings["genreclass"].update({"count": 2, "min_confidence": 0.0})
    path, _ = make_mp3(library, "two.mp3", tag(3, V23_FRAMES))
    classify(library)
    assert library.field("genres")["two.mp3"] == "Blues; High"
    from mediafile import MediaFile

    assert MediaFile(str(path)).genres == ["Blues", "High"]


def test_layouts_not_rewritten_here_are_refused_not_guessed():
    unsynced = b"ID3\x04\x00\x80" + bytes(4)
    with pytest.raises(id3_genre.ID3LayoutError):
        id3_genre.read_tag(unsynced)
    extended = b"ID3\x03\x00\x40" + bytes([0, 0, 0, 10]) + bytes(10)
    with pytest.raises(id3_genre.ID3LayoutError):
        id3_genre.read_tag(extended)
    assert id3_genre.read_tag(b"\xff\xfb\x90\x00" + bytes(100)) is None


def test_an_unsynchronised_v23_tag_keeps_its_other_frames_byte_for_byte(tmp_path):
    # A frame whose data holds false syncs (0xFF then >= 0xE0), unsynchronised as ID3v2.3 writes it.
    apic = frame(b"APIC", b"\x00image/jpeg\x00\x03\x00\xff\xd8\xff\xe0JFIF")
    body = id3_genre._unsynchronise(apic + frame(b"TCON", b"\x00Rock"))
    size = bytes((len(body) >> (7 * (3 - i))) & 0x7F for i in range(4))
    original = b"ID3\x03\x00\x80" + size + body
    new_tag, old_size = id3_genre.with_genres(original + b"\xff\xfbaudio", ["Jazz"], 4)
    assert old_size == len(original) and new_tag[3] == 3 and new_tag[5] == 0x80
    assert new_tag[10:].startswith(id3_genre._unsynchronise(apic))
    assert id3_genre.read_tag(new_tag).body.startswith(apic + frame(b"TCON", b"\x00Jazz"))
    (tmp_path / "u.mp3").write_bytes(new_tag + b"\xff\xfbaudio")
    tags = ID3(tmp_path / "u.mp3")
    assert tags["TCON"].text == ["Jazz"] and tags.getall("APIC")[0].data == b"\xff\xd8\xff\xe0JFIF"
