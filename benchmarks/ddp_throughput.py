"""Training throughput of `genreclass-train fit` on 1 process and under torchrun, side by side.

Runs the same fit (same data, recipe, seed and epochs) with each world size in turn and prints
the training windows per second of the whole world (`windows_per_s` in each run's history,
validation not counted; the first epoch, which warms caches up, left out), the speed-up over
one process, and each run's wall time. The feature cache is filled first, by a 1-epoch run
that is not counted.

    python benchmarks/ddp_throughput.py ../shared/data/manifest.csv --out runs/ddp --nproc 1,2 --epochs 4
    python benchmarks/ddp_throughput.py ../shared/data/manifest.csv --out runs/ddp-gpu --nproc 1,2 \
        --device cuda --epochs 4        # on a GPU node: one process per GPU

Every run uses all the cores: each of N processes gets cores / N torch threads (``--threads``
fixes it instead), so the comparison is one process with all threads against N with a share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run_fit(data: list[str], out: Path, nproc: int, epochs: int, device: str, threads: int, extra: list[str]) -> float:
    """One fit; returns its wall time in seconds. Output goes to OUT/log.txt."""
    fit = [str(BIN / "genreclass-train"), "fit", *data, "--out", str(out), "--cache", str(out.parent / "cache")]
    fit += ["--epochs", str(epochs), "--device", device, "--set", "patience=0", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc > 1:
        fit = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", str(nproc), *fit]
    fit += ["--set", f"threads={threads}"]
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(out / "log.txt", "w") as log:
        subprocess.run(fit, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="DATA as genreclass-train fit takes it")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--nproc", default="1,2", help="world sizes to compare [%(default)s]")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process [cores / largest world]")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE", help="passed to fit")
    args = ap.parse_args()
    worlds = [int(n) for n in args.nproc.split(",")]
    cores = len(os.sched_getaffinity(0))
    extra = [a for kv in args.extra for a in ("--set", kv)]
    print(f"machine: {cores} cores; device {args.device}", flush=True)
    run_fit(args.data, args.out / "warm-up", 1, 1, args.device, cores, extra)  # fills the feature cache
    rows = []
    for nproc in worlds:
        threads = args.threads or max(1, cores // nproc)
        out = args.out / f"world-{nproc}"
        wall = run_fit(args.data, out, nproc, args.epochs, args.device, threads, extra)
        history = json.loads((out / "history.json").read_text())
        rate = statistics.median(h["windows_per_s"] for h in history[1:] or history)
        rows.append((nproc, threads, rate, wall, history[-1]["train_loss"]))
        print(f"world {nproc}: {rate:.0f} windows/s, {wall:.0f} s wall", flush=True)
    base = rows[0][2]
    print("\n| processes | threads each | training windows/s | speed-up | wall s | last train loss |")
    print("|---|---|---|---|---|---|")
    for nproc, threads, rate, wall, loss in rows:
        print(f"| {nproc} | {threads} | {rate:.0f} | {rate / base:.2f}x | {wall:.0f} | {loss:.3f} |")


if __name__ == "__main__":
    main()
