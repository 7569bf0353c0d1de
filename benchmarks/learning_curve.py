"""Does fine-tuning pay? Learning curves of `beet genreclass-train`'s training, fine-tuned vs from scratch.

Protocol: a *base* model trained without the "personal library" (e.g. on GTZAN only) plays the
bundled model; the library is the rest of the pool (e.g. Emotify, grouped by artist). The
library's artists are cut into K group folds; each fold in turn is the held-out test set, and
from the other folds N tracks per genre are drawn for training (all of them when fewer
exist). For each N, `training.pipelines.retrain.retrain` runs twice on identical tracks: fine-tuning the
base model's conv blocks, and from scratch. Both are scored on the held-out artists, as is the
base model itself on the genres it shares with the library (mapped vote).

    python benchmarks/learning_curve.py BASE.onnx LIBRARY_MANIFEST.csv --out runs/lc/curve \\
        --sizes 10,25,50 --folds 3 --epochs 30 --cache runs/feature-cache
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data.splits import group_kfold  # noqa: E402
from training.data.tracks import load_manifest  # noqa: E402
from training.engine.config import TrainConfig  # noqa: E402
from training.pipelines.retrain import RetrainOptions, retrain  # noqa: E402


def sample_per_genre(tracks, labels, n: int, seed: int):
    """Up to `n` tracks of each label, drawn at random (the same draw for both methods)."""
    rng = random.Random(seed)
    out = []
    for label in labels:
        members = [t for t in tracks if t.label == label]
        rng.shuffle(members)
        out += members[:n]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="base model .onnx (must not have seen the library's tracks)")
    ap.add_argument("library", help="manifest .csv of the 'personal library' (path,label,group)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="10,25,50", help="tracks per genre to train on")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--cache", default="runs/feature-cache")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--methods",
        default="fine-tuned,scratch",
        help="fine-tuned (or head: the same call, for a base with an embedding output), scratch",
    )
    ap.add_argument("--ft-lr", type=float, default=None, help="fine-tuning learning rate [retrain's default]")
    ap.add_argument("--ft-backbone-scale", type=float, default=None, help="fine-tuning backbone lr scale [default]")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracks = load_manifest(args.library)
    labels = sorted({t.label for t in tracks})
    folds = group_kfold(tracks, args.folds, seed=0)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for fold in range(args.folds):
        test = [t for t, f in zip(tracks, folds, strict=True) if f == fold]
        pool = [t for t, f in zip(tracks, folds, strict=True) if f != fold]
        for n in sizes:
            train = sample_per_genre(pool, labels, n, seed=fold)
            for method in args.methods.split(","):
                started = time.time()
                scratch = method == "scratch"
                options = RetrainOptions(
                    epochs=args.epochs, from_scratch=scratch, base_model=args.base, workers=args.workers,
                    lr=None if scratch else args.ft_lr, backbone_lr_scale=None if scratch else args.ft_backbone_scale,
                )  # fmt: skip
                result = retrain(
                    train, test, labels, out / f"fold{fold}-n{n}-{method}.onnx", options, args.cache, log=lambda s: None
                )
                held = result.card["held_out"]
                row = {
                    "fold": fold,
                    "per_genre": n,
                    "method": method,
                    "n_train": len(train),
                    "n_test": held["new"]["n_tracks"],
                    "track_accuracy": held["new"]["track_accuracy"],
                    "macro_f1": held["new"]["macro_f1"],
                    "base_on_shared": held.get("on_shared", {}).get("base_track_accuracy"),
                    "new_on_shared": held.get("on_shared", {}).get("new_track_accuracy"),
                    "shared_labels": held["shared_labels"],
                    "seconds": round(time.time() - started, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    (out / "learning_curve.json").write_text(json.dumps(rows, indent=1))

    def mean_sd(values) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {sd:.3f}"

    grouped = defaultdict(list)
    for r in rows:
        grouped[(r["per_genre"], r["method"])].append(r)
    print(f"\n{args.folds} artist folds; mean ± sd over folds; {len(labels)} genres: {', '.join(labels)}")
    print(
        "| tracks per genre | fine-tuned acc | scratch acc | fine-tuned macro-F1 | scratch macro-F1 | base on shared genres |"
    )
    print("|---|---|---|---|---|---|")
    for n in sizes:
        ft = grouped[(n, "fine-tuned")] or grouped[(n, "head")]
        sc = grouped[(n, "scratch")] or [{"track_accuracy": None, "macro_f1": None}]
        print(
            f"| {n} | {mean_sd(r['track_accuracy'] for r in ft)} | {mean_sd(r['track_accuracy'] for r in sc)} "
            f"| {mean_sd(r['macro_f1'] for r in ft)} | {mean_sd(r['macro_f1'] for r in sc)} "
            f"| {mean_sd(r['base_on_shared'] for r in ft)} (fine-tuned on the same: {mean_sd(r['new_on_shared'] for r in ft)}) |"
        )


if __name__ == "__main__":
    main()
