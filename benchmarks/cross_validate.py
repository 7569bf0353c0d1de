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

Clips may carry several labels (`Track.genres`, e.g. the 4Q clips' AllMusic genres): a clip is
right when its top genre is in its set; per label, recall is taken on the clips of that label alone
and precision over every clip called it. ``--zero-shot`` adds 'musicnn-tags': MSD_musicnn's own tag
layer read through `training/models/musicnn/genre_tags.yaml`, with no training at all (labels no tag
names are never chosen), the prior the musicnn recipes start from with ``init_from_tags``.

A recipe with ``distill_weight`` > 0 learns from a teacher trained per fold by `--teacher-recipe`
on the fold's training tracks only (its soft targets: mean probabilities over every whole window
of each training track), so no held-out track informs the teacher either.

Per method the report also holds the written genre's precision and coverage at each ``min_confidence``
(`WRITE_THRESHOLDS`: coverage = share of clips whose top genre reaches it, precision = share of those
right). Writes OUT/cv_report.json (methods keyed by recipe name; `genreclass-train fit --cv-report` puts a
recipe's figures on its model's card) and, per method, metrics.json, confusion.png and
predictions.csv.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from genre_model import FrontendConfig, vote
from training.data.genres import select_labels
from training.data.splits import check_disjoint, pool_cv_fold_indices, pool_cv_folds
from training.data.tracks import Track, load_all
from training.engine.config import TrainConfig
from training.engine.loop import fit, track_probabilities
from training.evaluation.metrics import metrics_from_probs, write_metrics
from training.features.cache import Digests
from training.features.inputs import Inputs, LogMelInputs, inputs_for
from training.features.windows import InferenceWindows, TrackWindows, inference_windows, prepare
from training.models.musicnn.heads import tag_prior


class Prepared:
    """One kind of input on every track, computed once: the plugin's windows per placement, and the
    training arrays when a recipe first trains on them (the baseline never does)."""

    def __init__(self, inputs: Inputs, tracks: list[Track], labels: list[str], placements: list[int | None]) -> None:
        self.inputs, self.tracks, self.labels = inputs, tracks, labels
        self.placements: dict[int | None, InferenceWindows] = {}
        for max_windows in placements:
            self.placements[max_windows], failures = inference_windows(tracks, labels, inputs, max_windows)
            _refuse(failures)

    @functools.cached_property
    def train(self) -> TrackWindows:
        train, failures = prepare(self.tracks, self.labels, self.inputs)
        _refuse(failures)  # every track must be there: folds index the tracks
        return train

    def training_windows(self, idx: list[int]) -> TrackWindows:
        t = self.train
        return TrackWindows(
            [t.tracks[i] for i in idx], [t.arrays[i] for i in idx], t.labels, t.frontend, t.rows, t.crop_frames
        )


def _refuse(failures: dict[str, str]) -> None:
    if failures:
        raise SystemExit(f"undecodable clips: {sorted(failures)}")


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
    ap.add_argument("--zero-shot", action="store_true", help="add 'musicnn-tags', the tag layer with no training")
    ap.add_argument("--no-baseline", action="store_true", help="leave out the mel-statistics baseline")
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
    vocabularies = {c.labels for c in configs}
    if len(vocabularies) > 1:
        raise SystemExit(f"recipes compared on the same folds need one vocabulary, got {sorted(vocabularies)}")
    tracks, labels = select_labels(load_all(args.data, print), list(configs[0].labels) or None, configs[0].min_tracks)
    print(f"{len(tracks)} tracks ({sum(len(t.genres) > 1 for t in tracks)} with several labels), labels: {labels}")
    digests = Digests()
    prepared: dict[str, Prepared] = {}  # by kind of input and front end

    def prepared_for(config: TrainConfig) -> Prepared:
        key = f"{config.architecture.inputs}:{config.frontend_config().to_dict()}:{config.crop_frames}"
        if key not in prepared:
            inputs = inputs_for(config, args.cache, digests, args.workers)
            prepared[key] = Prepared(inputs, tracks, labels, placements)
        return prepared[key]

    baseline = None
    if not args.no_baseline:
        baseline = Prepared(LogMelInputs(args.cache, FrontendConfig(), digests, args.workers), tracks, labels, [8])
    teacher_config = TrainConfig.read(args.teacher_recipe).with_overrides({**fixed, "labels": list(labels)})
    folds = pool_cv_folds(tracks, args.folds, args.seed)
    methods = [*(["baseline"] if baseline else []), *(["musicnn-tags"] if args.zero_shot else []), *names]
    preds: dict[str, dict[int | None, dict[int, np.ndarray]]] = {m: defaultdict(dict) for m in methods}
    # MSD_musicnn's tag layer read as our labels, untrained (the prior of tag_prior_weight): the same for every fold.
    zero_shot = tag_prior(labels) if args.zero_shot else None
    timings: dict[str, list[float]] = defaultdict(list)
    curves: dict[str, list] = defaultdict(list)
    for f in range(args.folds):
        train_idx, valid_idx = pool_cv_fold_indices(folds, tracks, f)
        check_disjoint([tracks[i] for i in train_idx], [tracks[i] for i in valid_idx], digests.of)
        print(f"fold {f}: {len(train_idx)} train, {len(valid_idx)} valid tracks", flush=True)
        if baseline:
            started = time.time()
            probs = baseline_probs(baseline.placements[8], train_idx, valid_idx, len(labels))
            preds["baseline"][placements[0]].update((i, p[None, :]) for i, p in zip(valid_idx, probs, strict=True))
            timings["baseline"].append(time.time() - started)
        if zero_shot is not None:
            data = prepared_for(TrainConfig(arch="musicnn-backend"))
            for max_windows, windows in data.placements.items():
                held_out = track_probabilities(zero_shot, windows.subset(valid_idx).windows, torch.device("cpu"))
                preds["musicnn-tags"][max_windows].update(zip(valid_idx, held_out, strict=True))
            timings["musicnn-tags"].append(0.0)
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
        truth = [tracks[i].genres for i in idx]
        metrics = metrics_from_probs([headline[i] for i in idx], truth, labels, sources)
        metrics["written"] = written_genres([headline[i] for i in idx], truth, labels, sources)
        metrics["artist_pooling"] = artist_pooling({i: headline[i] for i in idx}, tracks, labels)
        metrics["max_windows"] = placements[0] or "all"
        metrics["fit_seconds_per_fold"] = float(np.mean(timings[m]))
        for max_windows in placements[1:]:
            if by_placement.get(max_windows):
                other = metrics_from_probs([by_placement[max_windows][i] for i in idx], truth, labels, sources)
                for figure in ("track_accuracy", "balanced_accuracy", "macro_f1"):
                    metrics[f"{figure}_{max_windows or 'all'}_windows"] = other[figure]
        write_metrics(metrics, out / m, title=f"{m}: {args.folds}-fold group CV")
        with open(out / m / "predictions.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            # The track's probabilities (mean over its windows, as `vote`) follow, one column per label,
            # so that poolings and mixtures of methods can be scored afterwards (benchmarks/prior_mixture.py).
            writer.writerow(["path", "genres", "source", "group", "fold", "predicted", "confidence", "right",
                             *(f"p:{label}" for label in labels)])  # fmt: skip
            for i in idx:
                verdict = vote(headline[i], labels)
                writer.writerow([tracks[i].path, "; ".join(tracks[i].genres), tracks[i].source, tracks[i].group,
                                 folds[i], verdict.top, f"{verdict.confidence:.4f}",
                                 int(verdict.top in tracks[i].genres),
                                 *(f"{p:.5f}" for p in np.asarray(headline[i]).mean(axis=0))])  # fmt: skip
        report["methods"][m] = metrics
        if curves[m]:
            (out / m / "curves.json").write_text(json.dumps(curves[m]))
    (out / "cv_report.json").write_text(json.dumps(report, indent=1))
    print_table(report)


# The min_confidence values the written genre's precision and coverage are reported at.
WRITE_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def written_genres(
    probs: list[np.ndarray], truth: list[tuple[str, ...]], labels: list[str], sources: list[str]
) -> dict[str, list[dict[str, float]]]:
    """Per source and overall ("all"): at each of `WRITE_THRESHOLDS`, the share of tracks whose top
    genre reaches it (coverage: they get a genre) and the share of those whose genre is right."""
    verdicts = [vote(p, labels) for p in probs]
    out: dict[str, list[dict[str, float]]] = {}
    for source in ["all", *sorted(set(sources))]:
        pick = [k for k, s in enumerate(sources) if source in ("all", s)]
        rows = []
        for threshold in WRITE_THRESHOLDS:
            covered = [k for k in pick if verdicts[k].confidence >= threshold]
            right = sum(verdicts[k].top in truth[k] for k in covered)
            rows.append({"min_confidence": threshold, "coverage": len(covered) / len(pick),
                         "precision": right / len(covered) if covered else float("nan")})  # fmt: skip
        out[source] = rows
    return out


def artist_pooling(probs: dict[int, np.ndarray], tracks: list[Track], labels: list[str]) -> dict[str, float]:
    """Each held-out track judged alone, and by the mean of its artist's held-out tracks' window
    probabilities (what `source: artist` would write), on the tracks of artists with 2 or more held-out
    clips. GTZAN's groups are lists, not artists: left out."""
    by_artist: dict[str, list[int]] = defaultdict(list)
    for i in probs:
        if not tracks[i].group.startswith("gtzan-"):
            by_artist[tracks[i].group].append(i)
    pooled = {g: members for g, members in by_artist.items() if len(members) >= 2}
    alone = right = 0
    for members in pooled.values():
        verdict = vote(np.concatenate([probs[i] for i in members]), labels)
        alone += sum(vote(probs[i], labels).top in tracks[i].genres for i in members)
        right += sum(verdict.top in tracks[i].genres for i in members)
    n = sum(len(m) for m in pooled.values())
    return {"artists": len(pooled), "tracks": n, "alone": alone / n if n else float("nan"),
            "pooled": right / n if n else float("nan")}  # fmt: skip


def print_table(report: dict) -> None:
    """The report as Markdown tables: overall and per source; per label; the written genre's precision/coverage."""
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
    for name, r in report["methods"].items():
        print(f"\n{name}, per label (recall on clips of the label alone, support; precision over clips called it):")
        print("| label | recall | support | precision | called | F1 |\n|---|---|---|---|---|---|")
        for label, c in r["per_class"].items():
            print(
                f"| {label} | {c['recall']:.2f} | {c['support']} | {c['precision']:.2f} | {c['predicted']} | {c['f1']:.2f} |"
            )
        ap = r["artist_pooling"]
        print(f"\n{name}, artist pooling: {ap['tracks']} tracks of {ap['artists']} artists with 2+ held-out clips: "
              f"alone {ap['alone']:.3f}, pooled by artist {ap['pooled']:.3f}")  # fmt: skip
        print(f"\n{name}, the written genre at each min_confidence (coverage / precision):")
        rows = r["written"]
        print("| min_confidence | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
        for k, threshold in enumerate(WRITE_THRESHOLDS):
            cells = [f"{rows[s][k]['coverage']:.2f} / {rows[s][k]['precision']:.2f}" for s in rows]
            print(f"| {threshold} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
