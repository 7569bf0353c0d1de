"""`beet genreclass-train`'s run: a beets library's own genres -> a new model, compared with the current one.

Steps, in order: the library's tagged tracks (those whose genres a person set, `load_beets`), the
vocabulary, a split by artist, the check that the held-out tracks can judge a model, then
`retrain` (a head on the base model's embedding, or a torch network) into `out`. The plugin's
command only parses its options into a `LibraryRetrain` and prints what comes back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from training.data.genres import read_aliases, select_labels
from training.data.tracks import load_beets
from training.errors import ConfigError, NotEnoughData
from training.pipelines.retrain import (
    RetrainOptions,
    RetrainResult,
    holdout_problems,
    plural,
    retrain,
    split_by_artist,
)


class HoldoutTooSmall(NotEnoughData):
    """The held-out tracks cannot judge a new model (and the run was not forced); says what is short."""


@dataclasses.dataclass(frozen=True)
class LibraryRetrain:
    """What `beet genreclass-train` was asked: the query, the vocabulary and how to train.

    query: beets query of the tracks to learn from. alias_file: a YAML mapping of genre -> label.
    vocabulary: the labels to learn (None: every genre with `min_tracks` tracks). out: the
    `.onnx` to write. cache: a folder for features (None: a temporary one). force: train even
    when the held-out tracks are too few to judge the model (the card then says so).
    """

    query: Sequence[str]
    out: str
    options: RetrainOptions
    alias_file: str | None = None
    vocabulary: Sequence[str] | None = None
    min_tracks: int = 10
    valid_fraction: float = 0.2
    force: bool = False
    cache: str | None = None
    spellings: Sequence[str] = ()  # the base model's labels, whose spelling a genre takes


@dataclasses.dataclass(frozen=True)
class LibraryRetrained:
    """The run's outcome: the model written, and the problems its figures have (forced runs)."""

    result: RetrainResult
    problems: list[str]


def retrain_library(lib, request: LibraryRetrain, log: Callable[[str], None]) -> LibraryRetrained:
    """Train a model on the genres of `lib`'s tracks as `request` says and write it to
    ``request.out``. Raises `TrainingError`s (`HoldoutTooSmall` when the held-out tracks cannot
    judge it and the run is not forced) with the reason and what would fix it."""
    try:
        aliases = read_aliases(request.alias_file) if request.alias_file else {}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tracks, left_out = load_beets(lib, list(request.query), aliases, request.vocabulary, spellings=request.spellings)
    for reason, n in sorted(left_out.items()):
        log(f"{plural(n, 'track')} left out: {reason}")
    tracks, labels = select_labels(tracks, request.vocabulary, request.min_tracks)
    train, valid = split_by_artist(tracks, labels, request.valid_fraction)
    log(
        f"{plural(len(labels), 'genre')}: {', '.join(labels)}; {plural(len(train), 'track')} to train, {len(valid)} held out"
    )
    problems = holdout_problems(valid, labels)
    if problems and not request.force:
        raise HoldoutTooSmall(
            "the held-out tracks cannot judge a new model: " + "; ".join(problems)
            + ". Tag tracks by more album artists, raise --valid-fraction, or give --force to train anyway"
        )  # fmt: skip
    os.makedirs(os.path.dirname(os.path.abspath(request.out)), exist_ok=True)
    with contextlib.ExitStack() as stack:
        cache = request.cache or stack.enter_context(tempfile.TemporaryDirectory(prefix="genreclass-features-"))
        result = retrain(train, valid, labels, Path(request.out), request.options, cache, log=log)
    return LibraryRetrained(result, problems)
