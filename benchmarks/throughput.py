"""Throughput of classifying full-length tracks, side by side with ffmpeg decoding them.

Builds N full-length tracks (stereo, 44.1 kHz, MP3 at 128 kb/s and/or FLAC) by chaining clips
of ../shared/data (or generated noise and tones when it is absent), then times in one process:
  (a) ffmpeg decoding each file completely to null, `workers` files at a time;
  (b) genre_model's pipeline (decode the windows, log-mel, model), writing nothing;
  (c) `beet genreclass` end to end on a temporary library (command start-up included);
and prints tracks/s for each, the ratios b/a and c/a, and peak RSS.

    python benchmarks/throughput.py --tracks 40 --seconds 240 --formats mp3,flac
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mutagen
import numpy as np
import soundfile

from genre_model import Classifier, classify_files, resolve_workers

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def source_clips(limit: int = 60) -> list[Path]:
    manifest = SHARED / "manifest.csv"
    if not manifest.is_file():
        return []
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(0)
    return [SHARED / rows[i]["path"] for i in rng.choice(len(rows), size=min(limit, len(rows)), replace=False)]


def build_track(index: int, clips: list[Path], seconds: float, out_base: Path, formats: list[str]) -> list[Path]:
    """One long stereo 44.1 kHz track chained from clips; encoded once per format with ffmpeg."""
    targets = [out_base.with_suffix(f".{fmt}") for fmt in formats]
    if all(t.exists() for t in targets):  # built by an earlier run with --keep
        return targets
    sr = 44100
    wav = out_base.with_suffix(".wav")
    rng = np.random.default_rng(index)
    if clips:
        parts, total = [], 0
        while total < seconds * sr:
            clip = clips[rng.integers(len(clips))]
            audio, clip_sr = soundfile.read(clip, dtype="float32", always_2d=True)
            import soxr

            mono = soxr.resample(audio.mean(axis=1), clip_sr, sr)
            parts.append(mono)
            total += mono.size
        mono = np.concatenate(parts)[: int(seconds * sr)]
    else:
        t = np.arange(int(seconds * sr)) / sr
        mono = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + rng.normal(0, 0.05, t.size)
    stereo = np.stack([mono, np.roll(mono, 441)], axis=1).astype(np.float32)
    soundfile.write(wav, stereo, sr)
    outs = []
    for fmt in formats:
        target = out_base.with_suffix(f".{fmt}")
        codec = ["-b:a", "128k"] if fmt == "mp3" else []
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *codec, str(target)], check=True)
        outs.append(target)
    wav.unlink()
    return outs


def ffmpeg_null(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"], check=True)


def timed(fn, *args, **kwargs) -> float:
    """Seconds `fn(*args, **kwargs)` takes."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def run_pipeline(clf: Classifier, paths: list[Path], max_windows: int, workers: int) -> None:
    failures = [o.error for o in classify_files(clf, paths, max_windows, workers) if o.error]
    if failures:
        raise RuntimeError(f"{len(failures)} tracks failed, e.g. {failures[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--formats", default="mp3,flac")
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--max-windows", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="model file [bundled]")
    ap.add_argument("--keep", default=None, help="folder to build the tracks in and keep (default: temporary)")
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed to build the tracks and for the (a) reference")
    workers = resolve_workers(args.workers)
    formats = args.formats.split(",")
    root = Path(args.keep or tempfile.mkdtemp(prefix="genreclass-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    clips = source_clips()
    print(f"building {args.tracks} x {args.seconds:.0f} s tracks ({', '.join(formats)}) from "
          f"{'shared clips' if clips else 'generated audio'} in {root}", flush=True)  # fmt: skip
    built: dict[str, list[Path]] = {f: [] for f in formats}
    with cf.ProcessPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(build_track, i, clips, args.seconds, root / f"track{i:04d}", formats)
            for i in range(args.tracks)
        ]
        for job in jobs:
            for fmt, path in zip(formats, job.result(), strict=True):
                built[fmt].append(path)

    clf = Classifier(args.model, device=args.device)
    print(f"model {clf.info.model_id}, providers {clf.providers}, workers {workers}, max_windows {args.max_windows}")
    rows = []
    for fmt, paths in built.items():
        n = len(paths)
        with cf.ThreadPoolExecutor(workers) as pool:  # threads only wait on ffmpeg processes
            t_a = timed(lambda jobs: list(pool.map(ffmpeg_null, jobs)), paths)
        t_b = timed(run_pipeline, clf, paths, args.max_windows, workers)
        lib = Path(tempfile.mkdtemp(prefix="genreclass-beets-"))
        try:
            (lib / "config.yaml").write_text(
                f"library: {lib}/library.db\ndirectory: {lib}/music\ncreate_backup_before_migrations: no\nplugins: [genreclass]\n"
                f"import: {{copy: no, write: no, incremental: no, duplicate_action: keep}}\n"
                # min_confidence 0: every track gets its tags written, so (c) includes the writing.
                f"genreclass: {{workers: {workers}, max_windows: {args.max_windows}, device: {args.device}, min_confidence: 0.0"
                + (f", model: {args.model}" if args.model else "") + "}\n"
            )  # fmt: skip
            env = {**os.environ, "BEETSDIR": str(lib)}
            beet = str(Path(sys.executable).with_name("beet"))
            for path in paths:  # tracks kept from an earlier run carry its genre tags: start untagged
                tagged = mutagen.File(path)
                if tagged is not None and tagged.tags is not None:
                    tagged.delete()
            subprocess.run(
                [beet, "import", "-A", "-s", "-q", *map(str, paths)], env=env, check=True, capture_output=True
            )
            start = time.perf_counter()
            proc = subprocess.run([beet, "genreclass", "-w", "-f"], env=env, capture_output=True, text=True, check=True)
            t_c = time.perf_counter() - start
            summary = proc.stdout.strip().splitlines()[-1]  # results, the summary last, go to stdout
            # Every track decoded, classified and its tags written ("N tracks classified"; "N classified" before 0.3).
            if not re.search(rf"\b{n} (tracks )?classified", summary):
                raise RuntimeError(f"beet genreclass did not classify every track: {summary}")
        finally:
            shutil.rmtree(lib)  # the throw-away library, also when a step fails
        rows.append((fmt, n, n / t_a, n / t_b, n / t_c))
    print(
        "\n| format | tracks | (a) ffmpeg to null, tracks/s | (b) pipeline, tracks/s | (c) beet genreclass, tracks/s | b/a | c/a |"
    )
    print("|---|---|---|---|---|---|---|")
    for fmt, n, a, b, c in rows:
        print(f"| {fmt} | {n} | {a:.1f} | {b:.1f} | {c:.1f} | {b / a:.2f} | {c / a:.2f} |")
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak RSS: this process {self_rss:.0f} MB, largest child process {child_rss:.0f} MB")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
