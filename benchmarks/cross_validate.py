"""Group-wise 5-fold cross-validation of CNN, CRNN and a mel-statistics baseline on the pool.

Folds: Emotify tracks by artist (group k-fold). GTZAN keeps its fault-filtered, artist-disjoint
split: 'gtzan-train' clips always train, 'gtzan-valid' clips are spread over the validation
folds and never train, so no group ever sits on both sides. Every evaluated clip is predicted
once, by a model that never saw its group. The networks run a fixed number of epochs (no early
stopping on the validation fold, which is the test set here).

    python benchmarks/cross_validate.py ../shared/data/manifest.csv --out runs/cv

With ``--distill runs/musicnn/pool.npz`` (`musicnn_embed.py`'s cache) it adds 'cnn-distilled':
the same CNN trained with `distill_weight` on a teacher fitted per fold (the default model's
recipe, `recipes/default.json`, on the fold's training tracks only; its soft targets are its
mean window probabilities over every window of each training track), so no held-out track
informs the teacher either.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from genre_model import FrontendConfig, vote
from training.data.splits import check_disjoint, pool_cv_fold_indices, pool_cv_folds
from training.data.tracks import load_manifest
from training.engine.config import TrainConfig
from training.engine.loop import fit, track_probabilities
from training.evaluation.metrics import metrics_from_probs, write_metrics
from training.features.cache import FeatureCache, file_digest
from training.features.windows import InferenceWindows, TrackWindows, inference_windows, prepare
from training.models.musicnn.heads import BackendConfig, fit_backend, predict_backend
from training.pipelines.musicnn_recipe import Recipe


def mel_stats(data: InferenceWindows) -> np.ndarray:
    """Baseline features: per-band mean and std over a track's inference windows, (n_tracks, 2*n_mels)."""
    return np.stack([np.concatenate([w.mean(axis=(0, 2)), w.std(axis=(0, 2))]) for w in data.windows])


class FoldTeacher:
    """A musicnn teacher per fold, from `musicnn_embed.py`'s cached pooled features."""

    def __init__(self, cache_path: str, recipe: Recipe, labels: list[str]) -> None:
        from musicnn_cv import Cache  # a sibling benchmark (python benchmarks/cross_validate.py ...)

        self.cache, self.config = Cache(cache_path), BackendConfig(**recipe.backend)
        if self.cache.labels != labels:
            raise SystemExit(f"{cache_path} has labels {self.cache.labels}, the manifest {labels}")
        self.position = {t.path: i for i, t in enumerate(self.cache.tracks)}

    def probabilities(self, tracks: list, seed: int) -> np.ndarray:
        """Fit the recipe's back end on `tracks` (every window) and return its mean window
        probabilities for each of them, (len(tracks), n_labels)."""
        idx = [self.position[t.path] for t in tracks]
        x, owner = self.cache.windows("all", "pool", idx)
        head = fit_backend(x, self.cache.targets(idx)[owner], len(self.cache.labels), self.config, seed=seed)
        from musicnn_cv import track_means

        return track_means(predict_backend(head, x), owner, len(idx))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="runs/feature-cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--config", help="recipe (recipes/*.json) for the networks' settings [TrainConfig's defaults]")
    ap.add_argument("--epochs", type=int, help="over the recipe")
    ap.add_argument("--archs", default="cnn,crnn")
    ap.add_argument("--seed", type=int, default=0, help="folds' seed; fold f trains with seed + f")
    ap.add_argument("--class-balance", type=float, help="over the recipe; see TrainConfig.class_balance")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--distill", metavar="POOL_NPZ", help="add 'cnn-distilled' (see above); musicnn_embed.py's cache")
    ap.add_argument("--distill-weight", type=float, default=0.5, help="TrainConfig.distill_weight of 'cnn-distilled'")
    ap.add_argument("--teacher-recipe", default="recipes/default.json", help="the per-fold teacher's recipe")
    args = ap.parse_args()

    given = {"epochs": args.epochs, "class_balance": args.class_balance}
    # A fixed number of epochs: the validation fold is the test set, never used to choose an epoch.
    config = (TrainConfig.read(args.config) if args.config else TrainConfig()).with_overrides(
        {"keep_best": False, "threads": 2, **{k: v for k, v in given.items() if v is not None}}
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracks = load_manifest(args.manifest)
    labels = sorted({t.label for t in tracks})
    cache = FeatureCache(args.cache, FrontendConfig())
    digests: dict[str, str] = {}
    prepare(tracks, labels, cache, digests, workers=args.workers)
    # What the plugin analyses in each clip: 8 windows (the protocol of the shipped CNN's card),
    # and, scored by the same models, 4 (the plugin's default since issue 10) and every whole window.
    eight, failures = inference_windows(tracks, labels, cache, digests, 8, args.workers)
    # placement -> (max_windows, suffix of its metrics in the report: track_accuracy_<suffix>, ...)
    others = {"all": (None, "all_windows"), "4": (4, "4_windows")}
    placements: dict[str, InferenceWindows] = {}
    for name, (max_windows, _) in others.items():
        placements[name], more = inference_windows(tracks, labels, cache, digests, max_windows, args.workers)
        failures.update(more)
    if failures:
        raise SystemExit(f"undecodable clips: {sorted(failures)}")
    folds = pool_cv_folds(tracks, args.folds, args.seed)
    methods = ["baseline", *(a for a in args.archs.split(",") if a)]  # --archs '': the baseline (and cnn-distilled)
    teacher = FoldTeacher(args.distill, Recipe.read(args.teacher_recipe), labels) if args.distill else None
    if teacher:
        methods.append("cnn-distilled")
    preds: dict[str, dict[int, np.ndarray]] = {m: {} for m in methods}
    preds_other: dict[str, dict[str, dict[int, np.ndarray]]] = {name: {m: {} for m in methods} for name in others}
    timings: dict[str, list[float]] = defaultdict(list)
    curves: dict[str, list] = defaultdict(list)
    for f in range(args.folds):
        train_idx, valid_idx = pool_cv_fold_indices(folds, tracks, f)
        train_t, valid_t = [tracks[i] for i in train_idx], [tracks[i] for i in valid_idx]
        check_disjoint(train_t, valid_t, lambda p: digests.get(p) or file_digest(p))
        train_w = TrackWindows(train_t, [digests[t.path] for t in train_t], cache, labels)
        print(f"fold {f}: {len(train_t)} train, {len(valid_t)} valid tracks", flush=True)

        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        t0 = time.time()
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=3000))
        clf.fit(mel_stats(eight.subset(train_idx)), train_w.targets)
        proba = np.zeros((len(valid_t), len(labels)))
        proba[:, clf.classes_] = clf.predict_proba(mel_stats(eight.subset(valid_idx)))
        for i, p in zip(valid_idx, proba, strict=True):
            preds["baseline"][i] = p[None, :]
        timings["baseline"].append(time.time() - t0)

        for arch in methods[1:]:
            distilled = arch == "cnn-distilled"
            cfg = dataclasses.replace(config, arch="cnn" if distilled else arch, seed=args.seed + f)
            train_w.teacher_probs = None
            if distilled:
                cfg = dataclasses.replace(cfg, distill_weight=args.distill_weight)
                train_w.teacher_probs = teacher.probabilities(train_w.tracks, seed=args.seed + f)
            valid_w = eight.subset(valid_idx)
            result = fit(train_w, valid_w, cfg, log=lambda s, a=arch: print(f"  {a} {s}", flush=True))
            device = next(result.model.parameters()).device
            for i, p in zip(valid_idx, track_probabilities(result.model, valid_w.windows, device), strict=True):
                preds[arch][i] = p
            # The same model over other placements: what max_windows=8 costs, and what 4 saves.
            for name, windows in placements.items():
                probs = track_probabilities(result.model, windows.subset(valid_idx).windows, device)
                preds_other[name][arch].update(zip(valid_idx, probs, strict=True))
            timings[arch].append(result.seconds)
            curves[arch].append(result.history)

    report = {
        "folds": args.folds,
        "epochs": config.epochs,
        "seed": args.seed,
        "config": config.to_dict(),
        "methods": {},
    }
    for m in methods:
        idx = sorted(preds[m])
        metrics = metrics_from_probs(
            [preds[m][i] for i in idx], [tracks[i].label for i in idx], labels, [tracks[i].source for i in idx]
        )
        metrics["fit_seconds_per_fold"] = float(np.mean(timings[m]))
        for name, (_, suffix) in others.items():
            if preds_other[name][m]:
                other = metrics_from_probs(
                    [preds_other[name][m][i] for i in idx], [tracks[i].label for i in idx], labels,
                    [tracks[i].source for i in idx],
                )  # fmt: skip
                for figure in ("track_accuracy", "balanced_accuracy", "macro_f1"):
                    metrics[f"{figure}_{suffix}"] = other[figure]
        write_metrics(metrics, out / m, title=f"{m}: {args.folds}-fold group CV")
        with open(out / m / "predictions.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "source", "fold", "predicted", "confidence"])
            for i in idx:
                verdict = vote(preds[m][i], labels)
                t = tracks[i]
                writer.writerow([t.path, t.label, t.source, folds[i], verdict.top, f"{verdict.confidence:.4f}"])
        report["methods"][m] = metrics
        if curves[m]:
            (out / m / "curves.json").write_text(json.dumps(curves[m]))
    (out / "cv_report.json").write_text(json.dumps(report, indent=1))
    print(
        "\n| method | track acc | balanced acc | macro-F1 | gtzan acc | emotify acc | all-window acc | 4-window acc | fit s/fold |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m in methods:
        r = report["methods"][m]
        ps = r.get("per_source", {})
        print(f"| {m} | {r['track_accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['macro_f1']:.3f} | "
              f"{ps.get('gtzan', {}).get('track_accuracy', float('nan')):.3f} | {ps.get('emotify', {}).get('track_accuracy', float('nan')):.3f} | "
              f"{r.get('track_accuracy_all_windows', float('nan')):.3f} | {r.get('track_accuracy_4_windows', float('nan')):.3f} | "
              f"{r['fit_seconds_per_fold']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
