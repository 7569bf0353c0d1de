"""Heads on the pretrained MSD_musicnn backbone, compared by the pool's 5-fold group CV.

Reads the cache of `benchmarks/musicnn_embed.py` and, for each fold of `pool_cv_folds` (the
bundled models' protocol), fits each head on the training tracks' windows and predicts the
held-out tracks from the windows the plugin would analyse (`max_windows` 8, 4, 2), by the
mean of the window probabilities.

    python benchmarks/musicnn_cv.py runs/musicnn/pool.npz --out runs/musicnn/cv

With ``--predictions FILE.npz`` it also writes every held-out window's probabilities (see
`write_predictions`), which `benchmarks/album_pooling.py` votes and pools as the plugin does.

Heads (the backbone is frozen in all of them; its features are cached):
  lr-clip-pool   logistic regression on each clip's mean pooled mid-end features (issue baseline),
                 one model per placement, trained on the clip means of the same placement (a mean
                 over a clip's every window differs from one over the plugin's windows: see
                 docs/BENCHMARKS.md)
  lr-window-emb  logistic regression on each window's 200-unit penultimate embedding
  lr-window-pool logistic regression on each window's pooled mid-end features

The networks fine-tuned by gradient descent (musicnn's back end, the default model, and its
mid-end) train through the one training loop from their recipes: `benchmarks/cross_validate.py
--recipes recipes/default.json`, on the same folds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.data.splits import pool_cv_fold_indices, pool_cv_folds
from training.data.tracks import Track
from training.evaluation.metrics import metrics_from_probs, write_metrics

PLACEMENTS = ("8", "4", "2")


class WindowArrays:
    """``data``: per placement P, ``P_<kind>`` window rows and ``P_offsets`` (track i's windows are
    offsets[i]:offsets[i+1])."""

    data: dict[str, np.ndarray]

    def windows(self, placement: str, kind: str, idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(features of every window of tracks `idx`, the track position in `idx` of each window)."""
        feats, offsets = self.data[f"{placement}_{kind}"], self.data[f"{placement}_offsets"]
        rows = [np.arange(offsets[i], offsets[i + 1]) for i in idx]
        owner = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)])
        return feats[np.concatenate(rows)], owner


class Cache(WindowArrays):
    """The arrays of one `musicnn_embed.py` file, sliced per track."""

    def __init__(self, path: str) -> None:
        data = np.load(path)
        self.data = {k: data[k] for k in data.files}
        self.tracks = [
            Track(str(p), str(lab), str(g), str(s))
            for p, lab, g, s in zip(data["path"], data["label"], data["group"], data["source"], strict=True)
        ]
        self.labels = sorted({t.label for t in self.tracks})

    def targets(self, idx: list[int]) -> np.ndarray:
        return np.array([self.labels.index(self.tracks[i].label) for i in idx])


def track_means(rows: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """(n, ...): the mean of each track's window rows (`owner` as `WindowArrays.windows` gives it)."""
    return np.stack([rows[owner == k].mean(axis=0) for k in range(n)])


def clip_means(cache: Cache, placement: str, idx: list[int]) -> np.ndarray:
    """(len(idx), 1506): each track's pooled features averaged over its windows of `placement`."""
    return track_means(*cache.windows(placement, "pool", idx), len(idx))


def per_track(probs: np.ndarray, owner: np.ndarray, n: int) -> list[np.ndarray]:
    return [probs[owner == k] for k in range(n)]


def fit_lr(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)).fit(x, y)


def proba(clf, x: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros((len(x), n_labels))
    out[:, clf.classes_] = clf.predict_proba(x)
    return out


def write_predictions(
    path: str, cache: Cache, folds: list[int | None], preds: dict[tuple[str, str], dict[int, np.ndarray]]
) -> None:
    """Per-window probabilities of the held-out tracks, one .npz.

    ``track``: indices into the cache of the predicted tracks (sorted), with their ``path``,
    ``label``, ``group``, ``source`` and ``fold``; ``labels``: the column order; per method M and
    placement P, ``M_wP_probs`` (n_windows, n_labels) float32 and ``M_wP_offsets`` (n_tracks + 1:
    predicted track k's windows are offsets[k]:offsets[k+1]).
    """
    idx = sorted(next(iter(preds.values())))
    arrays: dict[str, np.ndarray] = {
        "track": np.array(idx),
        "labels": np.array(cache.labels),
        "path": np.array([cache.tracks[i].path for i in idx]),
        "label": np.array([cache.tracks[i].label for i in idx]),
        "group": np.array([cache.tracks[i].group for i in idx]),
        "source": np.array([cache.tracks[i].source for i in idx]),
        "fold": np.array([folds[i] for i in idx]),
    }
    for (m, p), by_track in preds.items():
        arrays[f"{m}_w{p}_probs"] = np.concatenate([by_track[i] for i in idx]).astype(np.float32)
        arrays[f"{m}_w{p}_offsets"] = np.cumsum([0] + [len(by_track[i]) for i in idx])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("--out", required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="lr-clip-pool,lr-window-emb,lr-window-pool")
    ap.add_argument("--c", type=float, default=0.01, help="inverse regularisation of the logistic regressions")
    ap.add_argument("--predictions", help="also write the held-out windows' probabilities to this .npz")
    ap.add_argument("--placements", default=",".join(PLACEMENTS),
                    help="max_windows the other heads are scored at ('all': every whole window of each clip)")  # fmt: skip
    ap.add_argument("--clip-placements", default="8,4,2",
                    help="lr-clip-pool: placements to fit and score ('all': every whole window of each clip)")  # fmt: skip
    args = ap.parse_args()

    cache = Cache(args.cache)
    tracks, labels, n_labels = cache.tracks, cache.labels, len(cache.labels)
    folds = pool_cv_folds(tracks, args.folds, args.seed)
    methods = args.methods.split(",")
    placements = {m: args.placements.split(",") for m in methods}
    placements["lr-clip-pool"] = args.clip_placements.split(",")
    preds: dict[tuple[str, str], dict[int, np.ndarray]] = {(m, p): {} for m in methods for p in placements[m]}
    seconds = {m: 0.0 for m in methods}
    for f in range(args.folds):
        train_idx, valid_idx = pool_cv_fold_indices(folds, tracks, f)
        y_train = cache.targets(train_idx)
        print(f"fold {f}: {len(train_idx)} train, {len(valid_idx)} valid tracks", flush=True)
        for m in methods:
            t0 = time.time()
            if m == "lr-clip-pool":
                model = {p: fit_lr(clip_means(cache, p, train_idx), y_train, args.c) for p in placements[m]}
            elif m.startswith("lr-window-"):
                kind = m.removeprefix("lr-window-")
                x, owner = cache.windows("all", kind, train_idx)
                model = fit_lr(x, y_train[owner], args.c)
            else:
                raise SystemExit(f"unknown method {m}")
            seconds[m] += time.time() - t0
            for p in placements[m]:
                if m == "lr-clip-pool":
                    probs = [row[None, :] for row in proba(model[p], clip_means(cache, p, valid_idx), n_labels)]
                else:
                    x, owner = cache.windows(p, m.removeprefix("lr-window-"), valid_idx)
                    probs = per_track(proba(model, x, n_labels), owner, len(valid_idx))
                for i, pr in zip(valid_idx, probs, strict=True):
                    preds[(m, p)][i] = pr

    out = Path(args.out)
    report = {"folds": args.folds, "seed": args.seed, "c": args.c, "rows": {}}
    print("\n| head | max_windows | track acc | balanced acc | macro-F1 | GTZAN | Emotify | fit s/fold |")
    print("|---|---|---|---|---|---|---|---|")
    for m in methods:
        for p in placements[m]:
            idx = sorted(preds[(m, p)])
            metrics = metrics_from_probs(
                [preds[(m, p)][i] for i in idx], [tracks[i].label for i in idx], labels, [tracks[i].source for i in idx]
            )
            write_metrics(metrics, out / f"{m}-w{p}", title=f"musicnn {m}, max_windows {p}: {args.folds}-fold group CV")
            report["rows"][f"{m}/w{p}"] = metrics
            ps = metrics["per_source"]
            print(f"| {m} | {p} | {metrics['track_accuracy']:.3f} | {metrics['balanced_accuracy']:.3f} | "
                  f"{metrics['macro_f1']:.3f} | {ps['gtzan']['track_accuracy']:.3f} | "
                  f"{ps['emotify']['track_accuracy']:.3f} | {seconds[m] / args.folds:.1f} |", flush=True)  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    if args.predictions:
        write_predictions(args.predictions, cache, folds, preds)


if __name__ == "__main__":
    main()
