"""Album-level genres (issue 12): what pooling an album's tracks does to accuracy.

Reads the held-out window probabilities of `benchmarks/musicnn_cv.py --predictions` (the
pool's 5-fold group CV, `training.data.splits.pool_cv_folds`), gives each track its verdict with
`genre_model.vote` and each pseudo-album one verdict with `genre_model.pool_tracks`, the
functions the plugin uses, and scores every track by its album's top genre against its own
label (`training.evaluation.metrics.track_metrics`).

Pseudo-albums: the held-out clips of one Emotify artist (its `group`; an artist sits in one
fold, so one model predicts all its clips). GTZAN's groups are whole lists (gtzan-train,
gtzan-valid), not artists, so each GTZAN clip stays a singleton and pooling leaves it as it is.
Sub-albums: each Emotify clip of an artist with at least max(--sizes) clips, pooled with k-1
other clips of its artist drawn at random (--draws times), so every size is scored on the
same clips. Prints the per-track and pooled metrics with the pooled gain's 95% interval
(whole albums resampled), accuracy by album size, and the sub-album curve.

    python benchmarks/musicnn_embed.py ../shared/data/manifest.csv --out runs/musicnn/pool.npz
    python benchmarks/musicnn_cv.py runs/musicnn/pool.npz --out runs/musicnn/cv-album --methods lr-window-pool \
        --predictions runs/musicnn/cv-album/predictions.npz
    python benchmarks/album_pooling.py runs/musicnn/cv-album/predictions.npz
"""

from __future__ import annotations

import argparse
import random
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from genre_model import TrackPrediction, pool_tracks, vote
from training.evaluation.metrics import metrics_from_probs, track_metrics


def track_predictions(data: Any, method: str, placement: str, how: str) -> list[TrackPrediction]:
    """Each predicted track's verdict over its windows, as the plugin votes it."""
    probs, offsets = data[f"{method}_w{placement}_probs"], data[f"{method}_w{placement}_offsets"]
    labels = [str(x) for x in data["labels"]]
    return [vote(probs[a:b], labels, how) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def albums(groups: np.ndarray, sources: np.ndarray) -> list[list[int]]:
    """Track indices of each pseudo-album: an Emotify artist's clips; a GTZAN clip alone."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, (g, s) in enumerate(zip(groups, sources, strict=True)):
        by_key[str(g) if s == "emotify" else f"single:{i}"].append(i)
    return list(by_key.values())


def album_tops(preds: list[TrackPrediction], album_list: list[list[int]]) -> list[str]:
    """The top genre each track gets when its album is pooled."""
    tops = [""] * len(preds)
    for album in album_list:
        top = pool_tracks([preds[i] for i in album]).top
        for i in album:
            tops[i] = top
    return tops


def track_and_album_tops(
    data: Any, method: str, placement: str, how: str, album_list: list[list[int]]
) -> tuple[list[str], list[str]]:
    """(each track's own top genre, its album's pooled top genre)."""
    preds = track_predictions(data, method, placement, how)
    return [t.top for t in preds], album_tops(preds, album_list)


def album_bootstrap(gain: np.ndarray, album_list: list[list[int]], draws: int, seed: int) -> tuple[float, float]:
    """95% interval of the mean of `gain` (one value per track) when whole albums are resampled."""
    sums = np.array([gain[a].sum() for a in album_list])
    sizes = np.array([len(a) for a in album_list])
    pick = np.random.default_rng(seed).integers(0, len(album_list), (draws, len(album_list)))
    lo, hi = np.percentile(sums[pick].sum(axis=1) / sizes[pick].sum(axis=1), [2.5, 97.5])
    return float(lo), float(hi)


def scores(tops: list[str], true: list[str], labels: list[str], pick: list[int]) -> str:
    m = track_metrics([true[i] for i in pick], [tops[i] for i in pick], labels)
    return f"{m['track_accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['macro_f1']:.3f}"


def sub_album_accuracy(
    preds: list[TrackPrediction], true: list[str], artist: list[list[int]], size: int, draws: int, seed: int
) -> float:
    """Mean track accuracy of each clip pooled with size-1 random clips of its artist."""
    rng = random.Random(seed)
    correct = total = 0
    for clips in artist:
        for i in clips:
            for _ in range(draws):
                mates = rng.sample([j for j in clips if j != i], size - 1)
                correct += pool_tracks([preds[j] for j in [i, *mates]]).top == true[i]
                total += 1
    return correct / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions")
    ap.add_argument("--method", default="backend-ft")
    ap.add_argument("--placements", default="4,8")
    ap.add_argument("--vote", default="mean", help="the plugin's `vote` (mean or majority)")
    ap.add_argument("--buckets", default="1,2,4,9", help="album sizes where the breakdown's rows start")
    ap.add_argument("--sizes", default="1,2,4,8")
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    placements = args.placements.split(",")

    data = np.load(args.predictions)
    labels = [str(x) for x in data["labels"]]
    true, sources = [str(x) for x in data["label"]], data["source"]
    album_list = albums(data["group"], sources)
    emotify = [i for i, s in enumerate(sources) if s == "emotify"]
    everyone = list(range(len(true)))
    multi = [a for a in album_list if len(a) > 1]
    mixed = [a for a in multi if len({true[i] for i in a}) > 1]
    capped = sum(len(a) - Counter(true[i] for i in a).most_common(1)[0][1] for a in mixed)
    emotify_albums = [a for a in album_list if sources[a[0]] == "emotify"]
    sizes = Counter(map(len, emotify_albums))
    print(f"{len(true)} held-out tracks ({len(emotify)} Emotify); {len(album_list)} albums, of which "
          f"{len(multi)} of 2+ tracks holding {sum(map(len, multi))} tracks")  # fmt: skip
    print("Emotify album sizes (size: albums):", ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items())))
    print(f"albums mixing labels: {len(mixed)} ({sum(map(len, mixed))} tracks); pooling must get >= {capped} wrong")
    in_multi = sorted(i for a in multi for i in a)
    print(f"\n| {args.method}, vote {args.vote} | max_windows | verdict | track acc | balanced acc | macro-F1 | "
          f"Emotify acc | Emotify balanced | Emotify macro-F1 | acc in albums of 2+ ({len(in_multi)}) | "
          "wrong->right | right->wrong | gain, 95% (album bootstrap) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for p in placements:
        preds = track_predictions(data, args.method, p, args.vote)
        per_track = [t.top for t in preds]
        if args.vote == "mean":  # the per-track rows must be musicnn_cv's own figures
            offsets = data[f"{args.method}_w{p}_offsets"]
            windows = [data[f"{args.method}_w{p}_probs"][a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            reference = metrics_from_probs(windows, true, labels)["track_accuracy"]
            if abs(reference - np.mean([a == b for a, b in zip(per_track, true, strict=True)])) > 1e-12:
                raise SystemExit(f"vote disagrees with metrics_from_probs at max_windows {p}")
        for name, tops in (("per track", per_track), ("album-pooled", album_tops(preds, album_list))):
            multi_acc = np.mean([tops[i] == true[i] for i in in_multi])
            change = "- | - | -"
            if tops is not per_track:
                fixed = sum(tops[i] == true[i] != per_track[i] for i in everyone)
                broken = sum(per_track[i] == true[i] != tops[i] for i in everyone)
                gain = np.array([float(tops[i] == true[i]) - float(per_track[i] == true[i]) for i in everyone])
                lo, hi = album_bootstrap(gain, album_list, 2000, args.seed)
                change = f"{fixed} | {broken} | {gain.mean():+.3f} ({lo:+.3f}, {hi:+.3f})"
            print(f"| | {p} | {name} | {scores(tops, true, labels, everyone)} | {scores(tops, true, labels, emotify)} "
                  f"| {multi_acc:.3f} | {change} |")  # fmt: skip

    edges = [int(k) for k in args.buckets.split(",")] + [max(map(len, album_list)) + 1]
    parts = [
        (
            f"Emotify albums of {lo}" + (f"-{hi - 1}" if hi - 1 > lo else ""),
            [a for a in emotify_albums if lo <= len(a) < hi],
        )
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    parts.append(("albums mixing labels", mixed))
    print("\n| tracks in | albums | tracks | " + " | ".join(f"w{p} per track | w{p} pooled" for p in placements) + " |")
    print("|---|---|---|" + "---|---|" * len(placements))
    tops = {p: track_and_album_tops(data, args.method, p, args.vote, album_list) for p in placements}
    for name, part in parts:
        pick = [i for a in part for i in a]
        cells = [f"{np.mean([t[i] == true[i] for i in pick]):.3f}" for p in placements for t in tops[p]]
        print(f"| {name} | {len(part)} | {len(pick)} | " + " | ".join(cells) + " |")

    size_list = [int(k) for k in args.sizes.split(",")]
    by_artist = [a for a in emotify_albums if len(a) >= max(size_list)]
    n_clips = sum(map(len, by_artist))
    print(f"\nSub-albums: {n_clips} Emotify clips of the {len(by_artist)} artists with >= {max(size_list)} held-out "
          f"clips, each pooled with k-1 random clips of its artist, {args.draws} draws\n")  # fmt: skip
    print("| max_windows | " + " | ".join(f"k={k}" for k in size_list) + " | whole artist |")
    print("|---|" + "---|" * (len(size_list) + 1))
    for p in placements:
        preds = track_predictions(data, args.method, p, args.vote)
        row = [sub_album_accuracy(preds, true, by_artist, k, args.draws, args.seed) for k in size_list]
        whole = album_tops(preds, by_artist)
        row.append(np.mean([whole[i] == true[i] for a in by_artist for i in a]))
        print(f"| {p} | " + " | ".join(f"{x:.3f}" for x in row) + " |")


if __name__ == "__main__":
    main()
