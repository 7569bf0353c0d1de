"""Does keeping musicnn's own tag output as a prior help a fine-tuned model? Scored on a CV's held-out clips.

Reads two methods' ``predictions.csv`` from one `benchmarks/cross_validate.py` run (same folds, the
track probabilities in the ``p:<label>`` columns) and scores the mixture

    p = (1 - w) x p_model + w x p_prior        (w in [0, 1], per track, before the vote)

on every held-out clip, per source. The weight is chosen the way a recipe setting would be: for
each fold, the w that is most accurate on the other folds' clips is applied to that fold's clips
(nested, so no clip's figure comes from a weight chosen on it); the table also shows every w of
the grid on all clips, for the shape of the curve.

    python benchmarks/cross_validate.py $D/manifest.csv $D/4q.csv $D/gtzan_fragments.csv \\
        --recipes recipes/default.json --zero-shot --no-baseline --out runs/cv-prior
    python benchmarks/prior_mixture.py runs/cv-prior --model genreclass-default --prior musicnn-tags

A model that already mixes the prior in (a recipe with ``tag_prior_weight`` w0) is unmixed first,
``p_model = (p - w0 p_prior) / (1 - w0)`` (exact: the mixture is linear), so the grid starts from its
fine-tuned head alone; the prior's probabilities may come from another run on the same folds:

    python benchmarks/cross_validate.py ... --recipes recipes/default.json --out runs/cv-default
    python benchmarks/cross_validate.py ... --recipes recipes/default.json --set epochs=1 --zero-shot --out runs/cv-zeroshot
    python benchmarks/prior_mixture.py runs/cv-default --model genreclass-default --mixed 0.1 \
        --prior-from runs/cv-zeroshot
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

GRID = tuple(round(w, 2) for w in np.arange(0.0, 0.61, 0.05))


def read_predictions(path: Path) -> tuple[list[dict[str, str]], list[str], np.ndarray]:
    """Rows of a predictions.csv, its labels, and the track probabilities (n_tracks, n_labels)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = [k[2:] for k in rows[0] if k.startswith("p:")]
    if not labels:
        raise SystemExit(f"{path} has no probability columns: rerun benchmarks/cross_validate.py")
    return rows, labels, np.array([[float(r[f"p:{label}"]) for label in labels] for r in rows])


def right(probs: np.ndarray, sets: list[set[str]], labels: list[str]) -> np.ndarray:
    """(n_tracks,) bool: the top label is in the track's set."""
    return np.array([labels[k] in s for k, s in zip(probs.argmax(axis=1), sets, strict=True)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cv_out", type=Path, help="a cross_validate.py --out folder")
    ap.add_argument("--model", required=True, help="the fine-tuned method's name (a recipe's name)")
    ap.add_argument("--prior", default="musicnn-tags", help="the prior method (default: the zero-shot tag layer)")
    ap.add_argument(
        "--mixed",
        type=float,
        default=0.0,
        help="the weight of the prior already in the model's probabilities (its tag_prior_weight)",
    )
    ap.add_argument(
        "--prior-from",
        type=Path,
        default=None,
        help="the cross_validate.py --out folder holding the prior (default: cv_out)",
    )
    args = ap.parse_args()

    rows, labels, model = read_predictions(args.cv_out / args.model / "predictions.csv")
    prior_rows, prior_labels, prior = read_predictions(
        (args.prior_from or args.cv_out) / args.prior / "predictions.csv"
    )
    if prior_labels != labels or [r["path"] for r in prior_rows] != [r["path"] for r in rows]:
        raise SystemExit("the two methods must come from one run: same labels and clips")
    if not 0 <= args.mixed < 1:
        raise SystemExit(f"--mixed must be in [0, 1), got {args.mixed}")
    model = (model - args.mixed * prior) / (1 - args.mixed)  # the fine-tuned head alone
    if model.min() < -1e-4:
        raise SystemExit(f"unmixing at {args.mixed} gives negative probabilities: not the weight these were mixed with")
    sets = [set(r["genres"].split("; ")) for r in rows]
    folds = np.array([int(r["fold"]) for r in rows])
    sources = np.array([r["source"] for r in rows])

    hits = {w: right((1 - w) * model + w * prior, sets, labels) for w in GRID}
    nested = np.zeros(len(rows), dtype=bool)
    chosen = {}
    for f in sorted(set(folds)):
        others = folds != f
        chosen[f] = max(GRID, key=lambda w: (hits[w][others].mean(), -w))  # ties: the smaller weight
        nested[folds == f] = hits[chosen[f]][folds == f]

    names = ["all", *sorted(set(sources))]
    masks = {s: np.ones(len(rows), bool) if s == "all" else sources == s for s in names}
    print(f"{len(rows)} held-out clips; track accuracy (top genre in the clip's set)\n")
    print("| w | " + " | ".join(f"{s} ({masks[s].sum()})" for s in names) + " |")
    print("|---|" + "---|" * len(names))
    for w in GRID:
        print(f"| {w:.2f} | " + " | ".join(f"{hits[w][masks[s]].mean():.3f}" for s in names) + " |")
    print("| nested | " + " | ".join(f"{nested[masks[s]].mean():.3f}" for s in names) + " |")
    print(f"\nweights chosen per fold on the other folds: {chosen}")


if __name__ == "__main__":
    main()
