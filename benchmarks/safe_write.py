"""Time per file of writing the genre tag: the old in-place MediaFile write against the safe write.

  in-place        what the plugin did before: MediaFile(path).update({"genres": [...]}); save().
                  mutagen rewrites the tag where it is; when the new tag does not fit the padding
                  it shifts the audio in place (and leaves new padding behind). No fsync.
  in-place+fsync  the same, then fsync of the file: the old write made as durable as the new one.
  safe            the plugin's path now: tags.prepare_genre_write(item) (a full new copy beside the
                  file: MP3 new ID3 bytes + the rest copied, other formats copied then edited by
                  MediaFile; read back; fsync) and Replacement.commit() (rename, fsync of the folder).
                  The item is a bare beets Item with path and genres; no library, no database row.

Cases: 4-minute stereo 44.1 kHz noise-and-tone audio as MP3 (160 kb/s CBR, ID3v2.3 tag of five
frames) and as FLAC (~40 MB, FLAC cannot compress the noise), each once with padding enough for
the new genre and once with none. Every timed write starts from a fresh copy of the fixture
(copied and fsynced before the clock starts), because a write into a file without padding leaves
padding behind and the next write would no longer move the audio. One untimed write per method
and case comes first. The genre alternates Blues/Disco between repeats; the fixtures hold "Pop",
so every write changes the tag and outgrows it. beets' id3v23 is set so both paths keep the
fixtures' ID3v2.3.

Files are hot in the page cache (just copied): this measures warm writes; no cache is dropped.
With the defaults it runs for about 15 s on 2 CPUs and an ext4 virtual disk (fixtures included).

    python benchmarks/safe_write.py --repeats 5 --out-dir /path/on/the/disk/to/test
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mutagen
import numpy as np
import soundfile
from beets import config as beets_config
from beets.library import Item
from mediafile import MediaFile
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1, TRCK

from beetsplug.genreclass import tags

SAMPLE_RATE = 44100
SECONDS = 240
MP3_BITRATE = "160k"
ID3_PADDING = 1024  # bytes; "with padding": room for any of GENRES in place of "Pop"
FLAC_PADDING = 8192  # bytes; what the reference flac encoder leaves
# Longer than the fixtures' "Pop" even where the new ID3 frame drops the old one's terminator
# ("Rock" in UTF-16 fits "Pop\0" exactly), so "no padding" really makes each path grow the tag.
GENRES = ("Blues", "Disco")
FIXTURE_GENRE = "Pop"


@dataclass(frozen=True)
class Case:
    name: str
    fixture: Path


def noise_and_tones(seconds: float, seed: int = 0) -> np.ndarray:
    """(n_samples, 2) float32 in [-1, 1]: uniform noise at half scale (about 15 bits of entropy a
    sample, so FLAC stays near the PCM size) plus a tone per channel, so the MP3 is not pure noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tones = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    audio = rng.uniform(-0.5, 0.5, size=tones.shape) + 0.3 * tones
    return np.clip(audio, -1, 1).astype(np.float32)


def make_mp3(wav: Path, target: Path, padding: int) -> None:
    """MP3 with an ID3v2.3 tag of five frames (genre "Pop") and exactly `padding` bytes of padding."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-b:a", MP3_BITRATE]
        + ["-id3v2_version", "0", "-write_id3v1", "0", str(target)],
        check=True,
    )
    tag = ID3()
    for frame in (TIT2(text="Noise"), TPE1(text="Benchmark"), TALB(text="Safe write"), TRCK(text="1")):
        tag.add(frame)
    tag.add(TCON(text=FIXTURE_GENRE))
    tag.save(target, v2_version=3, padding=lambda info: padding)


def make_flac(audio: np.ndarray, target: Path, padding: int) -> None:
    """16-bit FLAC with five Vorbis comments (genre "Pop") and `padding` bytes of padding."""
    soundfile.write(target, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    flac = FLAC(target)
    flac.update({"title": "Noise", "artist": "Benchmark", "album": "Safe write", "tracknumber": "1"})
    flac["genre"] = FIXTURE_GENRE
    flac.save(padding=lambda info: padding)


def build_fixtures(folder: Path) -> list[Case]:
    audio = noise_and_tones(SECONDS)
    wav = folder / "source.wav"
    soundfile.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    cases = []
    for label, id3_padding, flac_padding in (("padded", ID3_PADDING, FLAC_PADDING), ("no padding", 0, 0)):
        mp3 = folder / f"fixture-{id3_padding}.mp3"
        make_mp3(wav, mp3, id3_padding)
        cases.append(Case(f"MP3 4 min, {label}", mp3))
        flac = folder / f"fixture-{flac_padding}.flac"
        make_flac(audio, flac, flac_padding)
        cases.append(Case(f"FLAC 40 MB, {label}", flac))
    wav.unlink()
    return sorted(cases, key=lambda c: (c.fixture.suffix != ".mp3", "no padding" in c.name))


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fresh_copy(fixture: Path, work: Path) -> None:
    """`fixture` copied to `work` and flushed: the timed write starts hot in cache, with nothing dirty."""
    shutil.copyfile(fixture, work)
    fsync(work)


def write_in_place(path: Path, genre: str) -> None:
    mediafile = MediaFile(str(path), id3v23=beets_config["id3v23"].get(bool))
    mediafile.update({"genres": [genre]})
    mediafile.save()


def write_in_place_fsync(path: Path, genre: str) -> None:
    write_in_place(path, genre)
    fsync(path)


def write_safe(path: Path, genre: str) -> None:
    tags.prepare_genre_write(Item(path=str(path), genres=[genre])).commit()


METHODS: dict[str, Callable[[Path, str], None]] = {
    "in-place": write_in_place,
    "in-place+fsync": write_in_place_fsync,
    "safe": write_safe,
}


def time_case(case: Case, folder: Path, repeats: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds of each write per repeat, by method, and each method's last change of file size
    (bytes; > 0 when the tag grew past its padding)."""
    work = folder / f"work{case.fixture.suffix}"
    seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    growth: dict[str, int] = {}
    for write in METHODS.values():  # untimed: first-call costs (lazy imports, caches) out of the figures
        fresh_copy(case.fixture, work)
        write(work, GENRES[-1])
    for repeat in range(repeats):
        genre = GENRES[repeat % len(GENRES)]
        for name, write in METHODS.items():  # interleaved, so drift hits every method alike
            fresh_copy(case.fixture, work)
            start = time.perf_counter()
            write(work, genre)
            seconds[name].append(time.perf_counter() - start)
            written = MediaFile(str(work)).genres
            if written != [genre]:
                raise RuntimeError(f"{case.name}, {name}: genres read back as {written!r}, not [{genre!r}]")
            growth[name] = work.stat().st_size - case.fixture.stat().st_size
    work.unlink()
    return seconds, growth


def filesystem_of(path: Path) -> str:
    """'type device mount-point' of the mount holding `path`, from /proc/mounts."""
    target = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                mount = mount.replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and (best is None or len(mount) > len(best[1])):
                    best = (device, mount, fstype)
    except OSError:
        return "unknown (no /proc/mounts)"
    return f"{best[2]} ({best[0]} mounted at {best[1]})" if best else "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out-dir",
        type=Path,
        help="folder for the fixtures and the written files (about 100 MB), on the file system to measure; "
        "kept afterwards. Default: a new temporary folder, removed afterwards",
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed writes per case and method (default 5)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")

    beets_config["id3v23"].set(True)
    temporary = args.out_dir is None
    folder = Path(tempfile.mkdtemp(prefix="genreclass-safe-write-")) if temporary else args.out_dir
    folder.mkdir(parents=True, exist_ok=True)
    filesystem = filesystem_of(folder)
    try:
        began = time.perf_counter()
        cases = build_fixtures(folder)
        built = time.perf_counter() - began
        sizes = {case.name: case.fixture.stat().st_size for case in cases}
        results = [(case, *time_case(case, folder, args.repeats)) for case in cases]
        timed = time.perf_counter() - began - built
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"date     {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine  {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"out dir  {folder}{' (removed)' if temporary else ''}, file system {filesystem}")
    print(
        f"run      fixtures built in {built:.1f} s, timed in {timed:.1f} s; {args.repeats} writes per case and method; mutagen {mutagen.version_string}"
    )
    print()
    header = (
        f"{'case':<24} {'MB':>6} {'in-place ms':>12} {'safe ms':>9} {'safe/in-place':>14}"
        f" {'in-place+fsync ms':>18} {'in-place grew B':>16} {'safe grew B':>12}"
    )
    print(header)
    print("-" * len(header))
    for case, seconds, growth in results:
        ms = {name: 1000 * statistics.median(values) for name, values in seconds.items()}
        print(
            f"{case.name:<24} {sizes[case.name] / 1e6:>6.1f} {ms['in-place']:>12.1f} {ms['safe']:>9.1f}"
            f" {ms['safe'] / ms['in-place']:>14.1f} {ms['in-place+fsync']:>18.1f}"
            f" {growth['in-place']:>16} {growth['safe']:>12}"
        )
    print()
    print("ms: median over the writes of one file. MB: the fixture's size (10^6 bytes). grew B: the written")
    print("file's size minus the fixture's (> 0: the tag outgrew its padding and new padding was added; for")
    print("in-place that means mutagen moved the audio inside the file).")
    print("Warm page cache: every write starts from a copy made (and fsynced) just before, so reads come from")
    print("memory; no cache was dropped. 'safe' fsyncs the whole new file and the folder; 'in-place' fsyncs")
    print("nothing, 'in-place+fsync' fsyncs the file.")


if __name__ == "__main__":
    main()
