"""`beet genreclass-train`'s run: a beets library's own genres -> a cross-validated estimate and a new model.

Steps, in order: the library's tagged tracks (those whose genres a person set, `load_beets`; a
track's genres are the set of labels it may carry), with `rollup` each genre short of tracks merged
into its parent in beets' genre tree (`training.data.genre_tree`), the vocabulary (`select_labels`),
then `retrain_estimated`: k-fold cross-validation over artists for the estimate, the model trained
on every track into `out`. The plugin's command only parses its options into a `LibraryRetrain`
and prints what comes back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from training.data.genres import read_aliases, select_labels
from training.data.tracks import load_beets
from training.errors import ConfigError
from training.pipelines.retrain import RetrainOptions, RetrainResult, plural
from training.pipelines.retrain_cv import K_FOLDS
from training.pipelines.retrain_estimated import retrain_estimated


@dataclasses.dataclass(frozen=True)
class LibraryRetrain:
    """What `beet genreclass-train` was asked: the query, the vocabulary and how to train.

    query: beets query of the tracks to learn from. alias_file: a YAML mapping of genre -> label.
    aliases: more {genre: label} pairs, under the alias file's (the plugin's `map` read backwards,
    so a genre the map writes is learnt as the label it came from). vocabulary: the labels to learn
    (None: every genre with `min_tracks` tracks). rollup: merge each genre short of tracks (fewer
    than `min_tracks`, or outside `vocabulary`) into its parent in beets' genre tree. out: the
    `.onnx` to write. folds: k of the cross-validation. cache: a folder for features (None: a
    temporary one). force: train without an estimate when none is possible (the card says so).
    spellings: known labels (the base model's, the `map`'s) whose spelling a genre takes.
    """

    query: Sequence[str]
    out: str
    options: RetrainOptions
    alias_file: str | None = None
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    vocabulary: Sequence[str] | None = None
    min_tracks: int = 10
    rollup: bool = False
    folds: int = K_FOLDS
    force: bool = False
    cache: str | None = None
    spellings: Sequence[str] = ()


def retrain_library(lib, request: LibraryRetrain, log: Callable[[str], None]) -> RetrainResult:
    """Estimate and train a model on the genres of `lib`'s tracks as `request` says; write it to
    ``request.out``. Raises `TrainingError`s (`NoEstimate` when no estimate is possible and the run
    is not forced, `NotEnoughData` when the vocabulary falls short) with the reason and the fix."""
    try:
        aliases = {**request.aliases, **(read_aliases(request.alias_file) if request.alias_file else {})}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tracks, left_out = load_beets(lib, list(request.query), aliases, request.vocabulary, spellings=request.spellings)
    for reason, n in sorted(left_out.items()):
        log(f"{plural(n, 'track')} left out: {reason}")
    notes = {}
    if request.rollup:
        from training.data.genre_tree import GenreTree, roll_up, rollup_text

        before = Counter(g for t in tracks for g in t.genres)
        tracks, merged = roll_up(tracks, GenreTree.installed(), request.min_tracks, request.vocabulary, aliases)
        notes["rolled_up"] = rollup_text(merged, before)
        for line in notes["rolled_up"]:
            log(f"rolled up into {line}")
    tracks, labels = select_labels(tracks, request.vocabulary, request.min_tracks)
    artists = len({t.group for t in tracks})
    log(
        f"{plural(len(labels), 'genre')}: {', '.join(labels)}; {plural(len(tracks), 'track')} by {plural(artists, 'artist')}"
    )
    os.makedirs(os.path.dirname(os.path.abspath(request.out)), exist_ok=True)
    with contextlib.ExitStack() as stack:
        cache = request.cache or stack.enter_context(tempfile.TemporaryDirectory(prefix="genreclass-features-"))
        return retrain_estimated(
            tracks, labels, Path(request.out), request.options, cache, request.folds, request.force, notes, log
        )
