"""Throughput of `beet genreclass -w -f` (tracks/s) for two revisions of this plugin, on the same files.

    python benchmarks/write_throughput.py --old e7b116f --new HEAD --formats mp3,flac --models fast,default --reps 2

Both revisions are exported from this repository (`git archive REV`, so committed code only, not the
working tree) into the work folder. Full-length fixture tracks are built there too (as
benchmarks/throughput.py builds them: --tracks MP3s, the first --flac of them also as FLAC), or reused
from --fixtures. For each format and model, --reps pairs of runs, old and new alternating which goes
first. Each run: a fresh copy of the fixtures, tags stripped -> a new throw-away library (BEETSDIR)
-> `beet import -A -s -q` -> sync -> wait (up to 180 s) for the machine to be quiet -> time
`beet genreclass -w -f`, command start-up included. A run counts only if that very beets process
loaded beetsplug.genreclass and genre_model from the revision's export (a wrapper reports the loaded
files), classified every track, left a genre tag in every file, and left no other file beside the
music. Each run's line reports the 1-minute load before it and the CPU seconds that processes already
running when it started (none of them ours) used during it. Not machine busy time minus our children's:
beets' decoder workers live under a forkserver that outlives beets, so their CPU never reaches our
rusage. Processes that start and end within the run are missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mutagen
import throughput  # benchmarks/throughput.py, beside this file: the fixture builder

REPO = Path(__file__).resolve().parents[1]
throughput.SHARED = REPO.parent / "shared" / "data"  # ../shared/data beside the checkout

# Run as `python -c WRAPPER beet-args...`: beets' own command line, plus one line on stderr at exit
# naming the files the plugin and genre_model were loaded from in this process.
WRAPPER = r"""
import atexit, json, sys
def _report():
    mods = {name: getattr(sys.modules.get(name), '__file__', None) for name in ('beetsplug.genreclass', 'genre_model')}
    mods['safe_write'] = 'beetsplug.genreclass.safe_write' in sys.modules
    sys.stderr.write('CODE-CHECK ' + json.dumps(mods) + '\n')
atexit.register(_report)
import beets.ui
beets.ui.main()
"""


@dataclass
class Run:
    version: str  # "old" or "new"
    tracks: int
    seconds: float  # wall-clock of `beet genreclass -w -f`
    waited: float  # seconds spent waiting for a quiet machine first
    load1: float  # 1-minute load average just before the run
    other_cpu: float  # CPU seconds used during the run by processes that were running before it
    safe_write: bool  # whether beetsplug.genreclass.safe_write was imported

    @property
    def tracks_per_s(self) -> float:
        return self.tracks / self.seconds


def export_revision(rev: str, dest: Path) -> str:
    """Extracts `rev` of this repository into `dest`; returns its full commit hash."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"], capture_output=True, text=True
    )
    if commit.returncode:
        sys.exit(f"unknown revision {rev!r}: {commit.stderr.strip()}")
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", commit.stdout.strip()], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait():
        sys.exit(f"git archive {rev} failed")
    return commit.stdout.strip()


def build_fixtures(folder: Path, tracks: int, flac: int, seconds: float, formats: list[str]) -> None:
    """`tracks` tracks of `seconds` s each into `folder`; FLAC only for the first `flac` of them."""
    clips = throughput.source_clips()
    print(f"building {tracks} x {seconds:.0f} s tracks ({', '.join(formats)}; flac: first {flac}) from "
          f"{'shared clips' if clips else 'generated audio'} in {folder}", flush=True)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        jobs = [
            pool.submit(
                throughput.build_track, i, clips, seconds, folder / f"track{i:04d}",
                [f for f in formats if f != "flac" or i < flac],
            )
            for i in range(tracks)
        ]  # fmt: skip
        for job in jobs:
            job.result()


def cpu_busy() -> float:
    """Machine-wide busy CPU seconds (all cores) since boot, from /proc/stat (idle and iowait left out)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def process_cpu() -> dict[tuple[int, int], float]:
    """CPU seconds (user + system) of every live process but this one, by (pid, start time in ticks)."""
    cpu = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(pid) != os.getpid():
            cpu[int(pid), int(fields[19])] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu


def wait_quiet(limit: float = 180.0) -> float:
    """Waits until other processes use < 0.15 core over 3 s, at most `limit` s; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        busy, own = cpu_busy(), own_cpu()
        time.sleep(3)
        if (cpu_busy() - busy - (own_cpu() - own)) / 3 < 0.15:
            break
    return time.perf_counter() - start


def beet(checkout: Path, lib: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BEETSDIR": str(lib), "PYTHONPATH": str(checkout)}
    return subprocess.run([sys.executable, "-c", WRAPPER, *argv], env=env, cwd=checkout, capture_output=True, text=True)


def time_run(version: str, checkout: Path, fixtures: list[Path], model: str, run_dir: Path) -> Run:
    """One timed `beet genreclass -w -f` of `checkout` on fresh copies of `fixtures` (all one format)."""
    music, lib = run_dir / "music", run_dir / "lib"
    music.mkdir(parents=True)
    lib.mkdir()
    copies = [Path(shutil.copyfile(f, music / f.name)) for f in fixtures]
    for path in copies:  # every run starts untagged, also on fixtures tagged by an earlier run elsewhere
        tagged = mutagen.File(path)
        if tagged is not None and tagged.tags is not None:
            tagged.delete()
    (lib / "config.yaml").write_text(
        f"library: {lib}/library.db\ndirectory: {lib}/music\ncreate_backup_before_migrations: no\nplugins: [genreclass]\n"
        "import: {copy: no, write: no, incremental: no, duplicate_action: keep}\n"
        # min_confidence 0: every track gets its tag written, so the run includes every write.
        f"genreclass: {{model: {model}, max_windows: 4, min_confidence: 0.0}}\n"
    )  # fmt: skip
    imported = beet(checkout, lib, "import", "-A", "-s", "-q", *map(str, copies))
    if imported.returncode:
        raise RuntimeError(f"{version}: beet import failed:\n{imported.stderr[-2000:]}")
    os.sync()  # the copies' dirty pages are not flushed on the clock
    waited = wait_quiet()
    load1 = os.getloadavg()[0]
    before = process_cpu()
    start = time.perf_counter()
    proc = beet(checkout, lib, "genreclass", "-w", "-f")
    seconds = time.perf_counter() - start
    other_cpu = sum(c - before[key] for key, c in process_cpu().items() if key in before)
    if proc.returncode:
        raise RuntimeError(f"{version}: beet genreclass failed:\n{proc.stderr[-3000:]}")
    summary = proc.stdout.strip().splitlines()[-1]  # the summary comes last on stdout
    if not re.search(rf"\b{len(copies)} (tracks )?classified", summary):  # older revisions: "N classified"
        raise RuntimeError(f"{version}: not every track classified: {summary}")
    check = json.loads([ln for ln in proc.stderr.splitlines() if ln.startswith("CODE-CHECK ")][-1][11:])
    for name in ("beetsplug.genreclass", "genre_model"):
        if not check[name] or not Path(check[name]).resolve().is_relative_to(checkout.resolve()):
            raise RuntimeError(f"{version}: {name} loaded from {check[name]}, not from {checkout}")
    untagged = [p.name for p in copies if not (mutagen.File(p, easy=True) or {}).get("genre")]
    stray = sorted({p.name for p in music.iterdir()} - {p.name for p in copies})
    if untagged or stray:
        raise RuntimeError(f"{version}: files without a genre {untagged}, stray files {stray}")
    return Run(version, len(copies), seconds, waited, load1, other_cpu, check["safe_write"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="e7b116f", help="revision to compare against [e7b116f: before safe writes]")
    ap.add_argument("--new", default="HEAD", help="revision to measure [HEAD]")
    ap.add_argument("--work", default=None, help="folder for exports, fixtures and runs [a new temporary one]")
    ap.add_argument("--keep", action="store_true", help="keep what was made in the work folder at the end")
    ap.add_argument("--fixtures", default=None, help="reuse the track*.<format> files of this folder")
    ap.add_argument("--tracks", type=int, default=80)
    ap.add_argument("--flac", type=int, default=40, help="how many of the tracks are also built as FLAC")
    ap.add_argument("--seconds", type=float, default=240.0, help="length of each built track")
    ap.add_argument("--models", default="fast,default")
    ap.add_argument("--formats", default="mp3,flac")
    ap.add_argument("--reps", type=int, default=2, help="pairs of runs per format and model")
    args = ap.parse_args()
    formats, models = args.formats.split(","), args.models.split(",")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="genreclass-write-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        checkouts = {"old": work / "old", "new": work / "new"}
        for folder in checkouts.values():
            shutil.rmtree(folder, ignore_errors=True)  # a --work kept from an earlier run
        commits = {v: export_revision(getattr(args, v), checkouts[v]) for v in checkouts}
        print(f"old {commits['old']} ({args.old})\nnew {commits['new']} ({args.new})", flush=True)
        fixture_dir = Path(args.fixtures) if args.fixtures else work / "fixtures"
        if not args.fixtures:
            build_fixtures(fixture_dir, args.tracks, args.flac, args.seconds, formats)
        results: dict[tuple[str, str], list[Run]] = {}
        for fmt in formats:
            fixtures = sorted(fixture_dir.glob(f"track*.{fmt}"))
            if not fixtures:
                sys.exit(f"no track*.{fmt} in {fixture_dir}")
            for model in models:
                runs = results.setdefault((fmt, model), [])
                for rep in range(args.reps):
                    for version in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                        run_dir = work / "run"
                        shutil.rmtree(run_dir, ignore_errors=True)
                        run = time_run(version, checkouts[version], fixtures, model, run_dir)
                        shutil.rmtree(run_dir)
                        runs.append(run)
                        print(f"{fmt} {model} rep {rep} {version}: {run.tracks} tracks in {run.seconds:.2f} s = "
                              f"{run.tracks_per_s:.2f} tracks/s (waited {run.waited:.0f} s, load {run.load1:.2f}, "
                              f"other CPU {run.other_cpu:.2f} s, safe_write loaded: {run.safe_write})", flush=True)  # fmt: skip
    finally:
        if not args.keep:  # a given --work folder stays: only what this script made in it goes
            made = ["old", "new", "run"] + ([] if args.fixtures else ["fixtures"])
            for folder in [work / name for name in made] if args.work else [work]:
                shutil.rmtree(folder, ignore_errors=True)
    print("\n| format | model | tracks | old tracks/s | new tracks/s | new/old (means) |")
    print("|---|---|---|---|---|---|")
    for (fmt, model), runs in results.items():
        old = [r.tracks_per_s for r in runs if r.version == "old"]
        new = [r.tracks_per_s for r in runs if r.version == "new"]
        ratio = statistics.fmean(new) / statistics.fmean(old)
        print(f"| {fmt} | {model} | {runs[0].tracks} | {', '.join(f'{x:.2f}' for x in old)} | "
              f"{', '.join(f'{x:.2f}' for x in new)} | {ratio:.3f} |")  # fmt: skip
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"\nmachine: {os.cpu_count()} CPUs, {platform.platform()}; date {now}")
    print(f"old {commits['old']} ({args.old}), new {commits['new']} ({args.new})")


if __name__ == "__main__":
    main()
