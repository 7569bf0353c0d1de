"""Group-wise k-fold cross-validation of recipes (any architecture) and a mel-statistics baseline, same folds for all.

Folds (`training.data.splits.pool_cv_folds`): tracks grouped by artist go to folds by group;
GTZAN keeps its fault-filtered, artist-disjoint split ('gtzan-train' clips always train,
'gtzan-valid' clips are spread over the validation folds and never train), so no group ever sits
on both sides. Every evaluated clip is predicted once, by a model that never saw its group. Each
recipe trains through the same code as `genreclass-train fit` (`training.features.inputs`,
`training.engine.loop.fit`) for its fixed number of epochs (the validation fold is the test set:
it never chooses an epoch), seed + fold; held-out tracks are judged on the windows the plugin
analyses (`--placements`, the first is the report's headline).

    python benchmarks/cross_validate.py ../shared/data/manifest.csv \
        --recipes recipes/default.json,recipes/fast.json --out runs/cv

A recipe with ``distill_weight`` > 0 learns from a teacher trained per fold by `--teacher-recipe`
on the fold's training tracks only (its soft targets: mean probabilities over every whole window
of each training track), so no held-out track informs the teacher either.

Writes OUT/cv_report.json (methods keyed by recipe name; `genreclass-train fit --cv-report` puts a
recipe's figures on its model's card) and, per method, metrics.json, confusion.png and
predictions.csv.
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
from training.data.tracks import Track, load_all
from training.engine.config import TrainConfig
from training.engine.loop import fit, track_probabilities
from training.evaluation.metrics import metrics_from_probs, write_metrics
from training.features.cache import Digests
from training.features.inputs import Inputs, LogMelInputs, inputs_for
from training.features.windows import InferenceWindows, TrackWindows, inference_windows, prepare


class Prepared:
    """One kind of input on every track, computed once: training arrays and the plugin's windows per placement."""

    def __init__(self, inputs: Inputs, tracks: list[Track], labels: list[str], placements: list[int | None]) -> None:
        self.inputs = inputs
        self.train, failures = prepare(tracks, labels, inputs)
        self.placements: dict[int | None, InferenceWindows] = {}
        for max_windows in placements:
            self.placements[max_windows], more = inference_windows(tracks, labels, inputs, max_windows)
            failures |= more
        if failures:
            raise SystemExit(f"undecodable clips: {sorted(failures)}")

    def training_windows(self, idx: list[int]) -> TrackWindows:
        t = self.train
        return TrackWindows(
            [t.tracks[i] for i in idx], [t.arrays[i] for i in idx], t.labels, t.frontend, t.rows, t.crop_frames
        )


def mel_stats(data: InferenceWindows) -> np.ndarray:
    """Baseline features: per-band mean and std over a track's inference windows, (n_tracks, 2*n_mels)."""
    return np.stack([np.concatenate([w.mean(axis=(0, 2)), w.std(axis=(0, 2))]) for w in data.windows])


def baseline_probs(eight: InferenceWindows, train_idx: list[int], valid_idx: list[int], n_labels: int) -> np.ndarray:
    """Logistic regression on mel statistics: what any network must beat, (len(valid_idx), n_labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=3000))
    clf.fit(mel_stats(eight.subset(train_idx)), eight.subset(train_idx).targets)
    proba = np.zeros((len(valid_idx), n_labels))
    proba[:, clf.classes_] = clf.predict_proba(mel_stats(eight.subset(valid_idx)))
    return proba


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="DATA as genreclass-train fit takes it (manifest .csv, ...)")
    ap.add_argument("--recipes", required=True, help="comma-separated recipe files (recipes/*.json)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="runs/feature-cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="folds' seed; fold f trains with seed + f")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting over every recipe, e.g. --set epochs=5")  # fmt: skip
    ap.add_argument("--placements", default="4,8", help="max_windows of the held-out tracks ('all': every window)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--teacher-recipe", default="recipes/default.json", help="the per-fold teacher of distillation")
    args = ap.parse_args()

    from training.engine.config import parse_assignment

    overrides = dict(parse_assignment(a) for a in args.assignments)
    # A fixed number of epochs: the validation fold is the test set, never used to choose an epoch.
    fixed = {"keep_best": False, "patience": 0, "valid_fraction": 0.0}
    configs = [TrainConfig.read(r).with_overrides({**fixed, **overrides}) for r in args.recipes.split(",") if r]
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise SystemExit(f"recipes need distinct names, got {names}")
    placements = [None if p == "all" else int(p) for p in args.placements.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracks = load_all(args.data, print)
    labels = sorted({t.label for t in tracks})
    digests = Digests()
    prepared: dict[str, Prepared] = {}  # by kind of input and front end

    def prepared_for(config: TrainConfig) -> Prepared:
        key = f"{config.architecture.inputs}:{config.frontend_config().to_dict()}:{config.crop_frames}"
        if key not in prepared:
            inputs = inputs_for(config, args.cache, digests, args.workers)
            prepared[key] = Prepared(inputs, tracks, labels, placements)
        return prepared[key]

    baseline = Prepared(LogMelInputs(args.cache, FrontendConfig(), digests, args.workers), tracks, labels, [8])
    teacher_config = TrainConfig.read(args.teacher_recipe).with_overrides(fixed)
    folds = pool_cv_folds(tracks, args.folds, args.seed)
    methods = ["baseline", *names]
    preds: dict[str, dict[int | None, dict[int, np.ndarray]]] = {m: defaultdict(dict) for m in methods}
    timings: dict[str, list[float]] = defaultdict(list)
    curves: dict[str, list] = defaultdict(list)
    for f in range(args.folds):
        train_idx, valid_idx = pool_cv_fold_indices(folds, tracks, f)
        check_disjoint([tracks[i] for i in train_idx], [tracks[i] for i in valid_idx], digests.of)
        print(f"fold {f}: {len(train_idx)} train, {len(valid_idx)} valid tracks", flush=True)
        started = time.time()
        probs = baseline_probs(baseline.placements[8], train_idx, valid_idx, len(labels))
        preds["baseline"][placements[0]].update((i, p[None, :]) for i, p in zip(valid_idx, probs, strict=True))
        timings["baseline"].append(time.time() - started)
        for config in configs:
            cfg = dataclasses.replace(config, seed=args.seed + f)
            data = prepared_for(cfg)
            train_w = data.training_windows(train_idx)
            if cfg.distill_weight > 0:
                taught = prepared_for(teacher_config)
                teacher = fit(taught.training_windows(train_idx), None,
                              dataclasses.replace(teacher_config, seed=args.seed + f), log=lambda s: None)  # fmt: skip
                windows = inference_windows(train_w.tracks, labels, taught.inputs, None, lambda s: None)[0]
                device = next(teacher.model.parameters()).device
                train_w.teacher_probs = np.stack(
                    [p.mean(axis=0) for p in track_probabilities(teacher.model, windows.windows, device)]
                )
            result = fit(train_w, None, cfg, log=lambda s, n=cfg.name: print(f"  {n} {s}", flush=True))
            device = next(result.model.parameters()).device
            for max_windows, windows in data.placements.items():
                held_out = track_probabilities(result.model, windows.subset(valid_idx).windows, device)
                preds[cfg.name][max_windows].update(zip(valid_idx, held_out, strict=True))
            timings[cfg.name].append(result.seconds)
            curves[cfg.name].append(result.history)

    report = {
        "folds": args.folds,
        "seed": args.seed,
        "sources": sorted({t.source for t in tracks}),
        "placements": [p or "all" for p in placements],
        "recipes": {c.name: c.to_dict() for c in configs},
        "methods": {},
    }
    for m in methods:
        by_placement = preds[m]
        headline = by_placement[placements[0]]
        idx = sorted(headline)
        sources = [tracks[i].source for i in idx]
        metrics = metrics_from_probs([headline[i] for i in idx], [tracks[i].label for i in idx], labels, sources)
        metrics["max_windows"] = placements[0] or "all"
        metrics["fit_seconds_per_fold"] = float(np.mean(timings[m]))
        for max_windows in placements[1:]:
            if by_placement.get(max_windows):
                other = metrics_from_probs([by_placement[max_windows][i] for i in idx], [tracks[i].label for i in idx],
                                           labels, sources)  # fmt: skip
                for figure in ("track_accuracy", "balanced_accuracy", "macro_f1"):
                    metrics[f"{figure}_{max_windows or 'all'}_windows"] = other[figure]
        write_metrics(metrics, out / m, title=f"{m}: {args.folds}-fold group CV")
        with open(out / m / "predictions.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "source", "fold", "predicted", "confidence"])
            for i in idx:
                verdict = vote(headline[i], labels)
                writer.writerow([tracks[i].path, tracks[i].label, tracks[i].source, folds[i], verdict.top,
                                 f"{verdict.confidence:.4f}"])  # fmt: skip
        report["methods"][m] = metrics
        if curves[m]:
            (out / m / "curves.json").write_text(json.dumps(curves[m]))
    (out / "cv_report.json").write_text(json.dumps(report, indent=1))
    print_table(report)


def print_table(report: dict) -> None:
    """The report as a Markdown table: overall, per source, and the other placements."""
    sources = report["sources"]
    others = [f"{p}_windows" for p in report["placements"][1:]]
    head = ["method", "track acc", "balanced acc", "macro-F1", *sources, *(f"acc {o.replace('_', ' ')}" for o in others),
            "fit s/fold"]  # fmt: skip
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, r in report["methods"].items():
        per = r.get("per_source", {})
        cells = [name, *(f"{r[k]:.3f}" for k in ("track_accuracy", "balanced_accuracy", "macro_f1"))]
        cells += [f"{per[s]['track_accuracy']:.3f} ({per[s]['n_tracks']})" if s in per else "" for s in sources]
        cells += [f"{r[f'track_accuracy_{o}']:.3f}" if f"track_accuracy_{o}" in r else "" for o in others]
        cells.append(f"{r['fit_seconds_per_fold']:.0f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
