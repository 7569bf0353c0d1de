"""Group-aware splits of tracks, made before any window is cut, and the leak check.

A group (artist, GTZAN list) sits on one side only, and so does a file's content: the same
recording under two names is caught by its hash.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from training.datasets import Track
from training.errors import SplitLeakError


def check_disjoint(train: Sequence[Track], valid: Sequence[Track], digest: Callable[[str], str]) -> None:
    """Raise `SplitLeakError` if a group or a content hash (from `digest(path)`) is on both sides."""
    groups = {t.group for t in train} & {t.group for t in valid}
    if groups:
        raise SplitLeakError(f"groups on both sides of the split: {sorted(groups)[:5]}")
    train_hashes = {digest(t.path): t.path for t in train}
    for t in valid:
        h = digest(t.path)
        if h in train_hashes:
            raise SplitLeakError(f"same audio on both sides: {train_hashes[h]} and {t.path}")


def group_kfold(tracks: Sequence[Track], k: int, seed: int = 0) -> list[int]:
    """Fold index (0..k-1) of each track; groups stay whole, labels spread evenly.

    Greedy: groups, largest first, go to the fold where their labels are least represented
    so far (relative to each fold's size), ties broken by a seeded shuffle.
    """
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tracks):
        by_group[t.group].append(i)
    if len(by_group) < k:
        raise ValueError(f"{len(by_group)} groups cannot fill {k} folds")
    rng = random.Random(seed)
    groups = list(by_group)
    rng.shuffle(groups)
    groups.sort(key=lambda g: -len(by_group[g]))
    fold_labels = [Counter() for _ in range(k)]
    fold_size = [0] * k
    assignment = [0] * len(tracks)
    for g in groups:
        labels = Counter(tracks[i].label for i in by_group[g])

        best = min(
            range(k),
            key=lambda f, labels=labels: (sum(fold_labels[f][lab] * n for lab, n in labels.items()), fold_size[f]),
        )
        for i in by_group[g]:
            assignment[i] = best
        fold_labels[best].update(labels)
        fold_size[best] += len(by_group[g])
    return assignment


def group_holdout(
    tracks: Sequence[Track], valid_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Track], list[Track]]:
    """Train/valid tracks: a dataset's own split where every track has one, else group folds.

    With a given split, 'valid' (or 'test' where no 'valid' exists) is held out. Otherwise
    about `valid_fraction` of the tracks, as whole groups, are held out.
    """
    if tracks and all(t.split for t in tracks):
        held = "valid" if any(t.split == "valid" for t in tracks) else "test"
        return [t for t in tracks if t.split == "train"], [t for t in tracks if t.split == held]
    k = max(2, round(1 / valid_fraction))
    folds = group_kfold(tracks, k, seed)
    return [t for t, f in zip(tracks, folds) if f != 0], [t for t, f in zip(tracks, folds) if f == 0]


def pool_cv_folds(tracks: Sequence[Track], k: int, seed: int = 0) -> list[int | None]:
    """The pool's cross-validation protocol (the bundled models' cards): fold of each track's
    validation side, None = always in training.

    Emotify tracks: group k-fold by artist. GTZAN keeps its fault-filtered, artist-disjoint
    split: 'gtzan-train' clips always train, 'gtzan-valid' clips are spread over the validation
    folds (label by label) and never train, so no group ever sits on both sides.
    """
    folds: list[int | None] = [None] * len(tracks)
    grouped = [i for i, t in enumerate(tracks) if not t.group.startswith("gtzan-")]
    for i, f in zip(grouped, group_kfold([tracks[i] for i in grouped], k, seed)):
        folds[i] = f
    per_label: Counter = Counter()
    for i, t in enumerate(tracks):
        if t.group == "gtzan-valid":
            folds[i] = per_label[t.label] % k
            per_label[t.label] += 1
    return folds


def pool_cv_fold_indices(folds: Sequence[int | None], tracks: Sequence[Track], f: int) -> tuple[list[int], list[int]]:
    """(train, valid) track indices of fold `f` of `pool_cv_folds`."""
    train = [i for i, fold in enumerate(folds) if fold is None or (fold != f and tracks[i].group != "gtzan-valid")]
    return train, [i for i, fold in enumerate(folds) if fold == f]
