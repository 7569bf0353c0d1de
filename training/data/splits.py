"""Group-aware splits of tracks, made before any window is cut, and the leak check.

A group (artist, GTZAN list) sits on one side only, and so does a file's content: the same
recording under two names is caught by its hash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from training.data.tracks import Track
from training.errors import NotEnoughData, SplitLeakError

# Folds of a group k-fold cross-validation unless asked otherwise (retraining's estimate).
K_FOLDS = 5


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
    """Fold index (0..k-1) of each track: groups stay whole, labels spread evenly over the folds
    (scikit-learn's `StratifiedGroupKFold`, shuffled with `seed`). Raises `NotEnoughData` when
    there are fewer groups than folds."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len({t.group for t in tracks})
    if n_groups < k:
        raise NotEnoughData(f"{n_groups} groups cannot fill {k} folds")
    folds = [0] * len(tracks)
    labels = [t.label for t in tracks]
    if max(Counter(labels).values(), default=0) < k:
        labels = [""] * len(tracks)  # no label can reach every fold: balance the folds' sizes alone
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a label with fewer tracks than folds is expected in a small library
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, held) in enumerate(splitter.split(tracks, labels, [t.group for t in tracks])):
            for i in held:
                folds[i] = fold
    return folds


def group_holdout(
    tracks: Sequence[Track], valid_fraction: float = 0.2, seed: int = 0, labels: Sequence[str] | None = None
) -> tuple[list[Track], list[Track]]:
    """Train/held-out tracks: a dataset's own split where every track has one, else whole groups.

    With a given split, 'valid' (or 'test' where no 'valid' exists) is held out. Otherwise
    about `valid_fraction` of the tracks, as whole groups (artists), are held out: the first
    of the ``1 / valid_fraction`` group folds (fewer when there are fewer groups) that leaves
    every one of `labels` (default: all the tracks' labels) a training track. Raises
    `NotEnoughData` when there are fewer than 2 groups or no fold leaves every label one.
    """
    if tracks and all(t.split for t in tracks):
        held = "valid" if any(t.split == "valid" for t in tracks) else "test"
        return [t for t in tracks if t.split == "train"], [t for t in tracks if t.split == held]
    groups = {t.group for t in tracks}
    if len(groups) < 2:
        raise NotEnoughData(
            f"all {len(tracks)} tracks are by one album artist; the held-out check needs tracks by at least 2"
        )
    labels = sorted({t.label for t in tracks}) if labels is None else labels
    # Few groups: hold out one in len(groups) rather than ask for more folds than groups.
    k = max(2, round(1 / max(valid_fraction, 1 / len(groups))))
    folds = group_kfold(tracks, k, seed)
    for held in range(k):
        train = [t for t, f in zip(tracks, folds, strict=True) if f != held]
        if set(labels) <= {t.label for t in train}:
            return train, [t for t, f in zip(tracks, folds, strict=True) if f == held]
    single = [lab for lab in labels if len({t.group for t in tracks if t.label == lab}) < 2]
    raise NotEnoughData(
        "every way of holding out artists leaves a genre without training tracks; "
        f"add tracks by more artists for: {', '.join(single)}"
    )


def pool_cv_folds(tracks: Sequence[Track], k: int, seed: int = 0) -> list[int | None]:
    """The pool's cross-validation protocol (the bundled models' cards): fold of each track's
    validation side, None = always in training.

    Emotify tracks: group k-fold by artist. GTZAN keeps its fault-filtered, artist-disjoint
    split: 'gtzan-train' clips always train, 'gtzan-valid' clips are spread over the validation
    folds (label by label) and never train, so no group ever sits on both sides.
    """
    folds: list[int | None] = [None] * len(tracks)
    grouped = [i for i, t in enumerate(tracks) if not t.group.startswith("gtzan-")]
    for i, f in zip(grouped, group_kfold([tracks[i] for i in grouped], k, seed), strict=True):
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
