"""Is `beet genreclass-train`'s cross-validated estimate honest, and is the head fast? (issue 23)

`library`: cut a manifest's artists in two: a beets library of some of them (`make_library.py`),
and a check set of the others, never in the library. `beet genreclass-train --install` runs on
the library (its output printed, its time taken); then the installed model classifies the check
artists' tracks, as the plugin would (8 windows, the mean vote, top genre in the track's set is
right), and its accuracy is printed beside the estimate and the estimate's spread over folds.

    python benchmarks/retrain_cv.py library ../shared/data/manifest.csv runs/rcv/small --dataset emotify \\
        --artists-per-genre 6 --tracks-per-artist 3 [--compilations 0.7] [--train-args '--rollup']

`timing`: `training.pipelines.retrain_estimated` on N tracks of a manifest, twice: the first run
fills the cache (embeddings, the base model's verdicts), the second is what a rerun costs; both
timed, the estimate printed.

    python benchmarks/retrain_cv.py timing ../shared/data/manifest.csv ../shared/data/4q.csv --tracks 500 \\
        --cache runs/feature-cache
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from genre_model import AudioDecodeError, Classifier, track_features, vote  # noqa: E402
from training.data.genres import canonical_genre  # noqa: E402
from training.data.tracks import load_manifest  # noqa: E402

HERE = Path(__file__).resolve().parent
# --fine-names: the styles lastgenre might give each artist instead of the pool's genre (names of beets'
# genre tree), dealt to a genre's artists in turn; the last is the genre itself.
FINE_NAMES = {
    "Rock": ["hard rock", "indie rock", "garage rock", "rock"],
    "Pop": ["europop", "teen pop", "soft rock", "pop"],
    "Electronic": ["techno", "house", "ambient", "electronic"],
    "Classical": ["baroque", "opera", "chamber music", "classical"],
}


def pick_library(rows: list[dict], per_genre: int, per_artist: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(library rows, check rows): `per_genre` artists of each first genre, up to `per_artist` clips
    each, in the library; every other artist's clips in the check set."""
    rng = random.Random(seed)
    by_genre: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        first = (r.get("label") or r["genres"]).split(";")[0].strip()
        by_genre[first][r["group"]].append(r)
    chosen: set[str] = set()
    library = []
    for genre in sorted(by_genre):
        artists = sorted(a for a in by_genre[genre] if a not in chosen)
        rng.shuffle(artists)
        for a in artists[:per_genre]:
            chosen.add(a)
            library += by_genre[genre][a][:per_artist]
    return library, [r for r in rows if r["group"] not in chosen]


def write_manifest(
    rows: list[dict], path: Path, base: Path, compilations: float, seed: int, fine_names: bool = False
) -> None:
    """Rows with absolute paths; a share `compilations` of the artists' clips tagged as on samplers
    by "Various Artists" (album 'Sampler N', comp), the rest by their own album artist; with
    `fine_names`, each artist's genre replaced by a style of it (`FINE_NAMES`)."""
    rng = random.Random(seed)
    style: dict[str, str] = {}
    for r in rows:
        names = FINE_NAMES.get(r.get("label", ""))
        if fine_names and names and r["group"] not in style:
            style[r["group"]] = names[sum(v in names for v in style.values()) % len(names)]
    fields = ["path", "label", "genres", "group", "albumartist", "album", "comp"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        for r in rows:
            sampler = rng.random() < compilations
            w.writerow({
                "path": str((base / r["path"]).resolve()), "label": style.get(r["group"], r.get("label", "")),
                "genres": r.get("genres", ""),
                "group": r["group"], "albumartist": "Various Artists" if sampler else "",
                "album": f"Sampler {rng.randrange(6) + 1}" if sampler else "", "comp": "1" if sampler else "",
            })  # fmt: skip


def check_accuracy(model_path: Path, rows: list[dict], base: Path) -> dict:
    """The installed model on the check artists' clips: 8 windows, mean vote; right when its top
    genre is one of the clip's genres (canonical, as training saw them)."""
    model = Classifier(model_path, device="cpu")
    known = set(model.info.labels)
    hits, per_genre, skipped, artists = [], defaultdict(list), 0, set()
    for r in rows:
        genres = {canonical_genre(g.strip(), None, list(known)) for g in (r.get("label") or r["genres"]).split(";")}
        if not genres & known:
            continue  # a genre the model was not taught: not a test of it
        try:
            windows = track_features(base / r["path"], model.info.frontend, 8)
        except AudioDecodeError:
            skipped += 1
            continue
        top = vote(model.window_probabilities(windows), model.info.labels).top
        hits.append(top in genres)
        artists.add(r["group"])
        if len(genres & known) == 1:
            per_genre[next(iter(genres & known))].append(top in genres)
    return {
        "n_tracks": len(hits),
        "n_artists": len(artists),
        "track_accuracy": float(np.mean(hits)) if hits else None,
        # as the estimate's: the mean over genres of the recall on single-genre tracks
        "balanced_accuracy": float(np.mean([np.mean(v) for v in per_genre.values()])) if per_genre else None,
        "recall": {g: round(float(np.mean(v)), 3) for g, v in sorted(per_genre.items())},
        "skipped": skipped,
    }


def run_library(args: argparse.Namespace) -> None:
    manifest = Path(args.manifest).resolve()
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if not args.dataset or r.get("dataset") == args.dataset]
    library, check = pick_library(rows, args.artists_per_genre, args.tracks_per_artist, args.seed)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=False)
    write_manifest(library, out / "library.csv", manifest.parent, args.compilations, args.seed, args.fine_names)
    print(f"library: {len(library)} clips by {len({r['group'] for r in library})} artists; check: {len(check)} clips")
    subprocess.run([sys.executable, str(HERE / "make_library.py"), str(out / "library.csv"), str(out / "lib")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {**os.environ, "BEETSDIR": str(out / "lib"), "PYTHONPATH": str(HERE.parent)}
    beet = str(Path(sys.executable).with_name("beet"))
    for earlier in args.also:  # e.g. the run without --rollup, to show what it says
        print("$ BEETSDIR=lib beet genreclass-train " + earlier)
        shown = subprocess.run(
            [beet, "genreclass-train", *shlex.split(earlier)], env=env, capture_output=True, text=True
        )
        print(shown.stdout + "".join(line + "\n" for line in shown.stderr.splitlines() if "error" in line), end="")
    command = [beet, "genreclass-train", "--install", "--out", str(out / "personal.onnx"), "--cache", args.cache,
               *shlex.split(args.train_args)]  # fmt: skip
    print("$ BEETSDIR=lib beet " + " ".join(command[1:]))
    started = time.time()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.time() - started
    print(proc.stdout, end="")
    (out / "train.log").write_text(proc.stderr)
    if proc.returncode != 0:
        print(proc.stderr, end="")
        print(f"[exit {proc.returncode} after {seconds:.1f} s]")
        return
    print(f"[{seconds:.1f} s]")
    card = json.loads((out / "personal.card.json").read_text())
    check_result = check_accuracy(out / "personal.onnx", check, manifest.parent)
    estimate = card["estimate"]
    result = {"library": card["data"], "seconds": round(seconds, 1), "check": check_result}
    if estimate:
        s = estimate["track_accuracy_spread"]
        acc, sd = estimate["metrics"]["track_accuracy"], s["sd"] if s["sd"] is not None else s["standard_error"]
        result["estimate"] = {"track_accuracy": acc, "sd": sd, "min": s["min"], "max": s["max"], "k": estimate["k"]}
        got = check_result["track_accuracy"]
        inside = got is not None and abs(got - acc) <= sd
        print(f"estimate {acc:.3f} (sd {sd:.3f} over folds, {s['min']:.3f} to {s['max']:.3f}); held-out-artist check "
              f"{got:.3f} on {check_result['n_tracks']} tracks by {check_result['n_artists']} artists not in the "
              f"library: {'within' if inside else 'outside'} one sd; balanced: estimate "
              f"{estimate['metrics']['balanced_accuracy']:.3f}, check {check_result['balanced_accuracy']:.3f}; "
              f"per-genre recall {check_result['recall']}")  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=1))


def run_timing(args: argparse.Namespace) -> None:
    from training.pipelines.retrain import RetrainOptions
    from training.pipelines.retrain_estimated import estimate_lines, retrain_estimated

    tracks = [t for manifest in args.manifests for t in load_manifest(manifest)]
    rng = random.Random(args.seed)
    rng.shuffle(tracks)
    tracks = tracks[: args.tracks]
    labels = sorted({g for t in tracks for g in t.genres})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = RetrainOptions(workers=args.workers)
    for run in ("first (cache filled)", "second (cached)"):
        started = time.time()
        result = retrain_estimated(tracks, labels, out / "timing.onnx", options, args.cache, log=lambda s: None)
        print(f"{run}: {time.time() - started:.1f} s for {len(tracks)} tracks, {len(labels)} genres")
    for line in estimate_lines(result.card):
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    lib = sub.add_parser("library")
    lib.add_argument("manifest")
    lib.add_argument("out")
    lib.add_argument("--dataset")
    lib.add_argument("--artists-per-genre", type=int, default=6)
    lib.add_argument("--tracks-per-artist", type=int, default=3)
    lib.add_argument("--compilations", type=float, default=0.0, help="share of clips tagged as on samplers")
    lib.add_argument("--fine-names", action="store_true", help="tag each artist with a style of its genre")
    lib.add_argument("--train-args", default="", help="more beet genreclass-train options")
    lib.add_argument("--also", action="append", default=[], help="genreclass-train options of an earlier run, shown")
    lib.add_argument("--cache", default="runs/feature-cache")
    lib.add_argument("--seed", type=int, default=0)
    timing = sub.add_parser("timing")
    timing.add_argument("manifests", nargs="+")
    timing.add_argument("--tracks", type=int, default=500)
    timing.add_argument("--out", default="runs/rcv/timing")
    timing.add_argument("--cache", default="runs/feature-cache")
    timing.add_argument("--workers", type=int, default=2)
    timing.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.cache = str(Path(args.cache).resolve())
    (run_library if args.what == "library" else run_timing)(args)


if __name__ == "__main__":
    main()
