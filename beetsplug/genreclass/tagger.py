"""The worker behind `beet genreclass` and the import stage: classify items, set their fields.

Results go to stdout (`ui.print_`, `ui.show_model_changes`), one entry per track and a summary;
diagnostics (a file that cannot be read or written) go to the plugin's log. Tags are written
only when the caller says so: the import stage leaves that to `import_task_files`, after beets
has copied or moved the files.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

from beets import ui
from beets.library import Item

from genre_model import Classifier, DecoderPool, GenreModelError, Outcome, TrackPrediction, classify_files, pool_tracks

from .progress import Progress, stop_requests
from .settings import Settings
from .units import Unit, group_units, user_tagged

# Summary keys, in the order the summary line gives them.
OUTCOMES = ("classified", "unchanged", "uncertain", "skipped", "failed")


def label(item: Item) -> str:
    """How a track is named in results: beets' item format, or its path when it has no title."""
    return format(item) if item.get("title") else item.filepath.as_posix()


def skip_reason(item: Item, model_id: str, min_confidence: float) -> str | None:
    """Why `item` needs no classifying by model `model_id` (None: it does)."""
    if item.get("genreclass_model") == model_id:
        if item.get("genres"):
            return f"already classified by {model_id}"
        confidence = float(item.get("genreclass_confidence") or 0.0)
        if confidence < min_confidence:  # found uncertain before, and the threshold is no lower now
            return f"uncertain last time ({confidence:.3f} < min_confidence {min_confidence:g})"
        return None
    if item.get("genres") and not item.get("genreclass_model"):
        return f"already has genres ({'; '.join(item.genres)})"
    return None


def summary_line(tracks: Counter, albums: Counter | None = None) -> str:
    """'3 classified, 0 unchanged, ...' with the run's timing when it has one; with albums,
    'albums: 2 classified, ...; tracks: ...' (tracks judged alone, and tracks that failed)."""

    def counts(summary: Counter) -> str:
        return ", ".join(f"{summary[k]} {k}" for k in OUTCOMES)

    line = counts(tracks)
    if albums and any(albums[k] for k in OUTCOMES):
        line = f"albums: {counts(albums)}" + (f"; tracks: {line}" if any(tracks[k] for k in OUTCOMES) else "")
    if tracks["seconds"] and tracks["decoded"]:
        line += f" in {tracks['seconds']:.1f} s ({tracks['decoded'] / tracks['seconds']:.1f} tracks/s)"
    return line


Write = Callable[[Item], str | None]


class Tagger:
    """Classifies items with one classifier and one decoder pool, and sets their genres.

    log: the plugin's logger. pool: decoder processes kept across calls (one import, many tasks).
    summary: outcomes of tracks judged alone, tracks that failed, and the decoding time;
    albums: outcomes of albums (``source: album``). Both add up over every `run`.
    """

    def __init__(self, classifier: Classifier, pool: DecoderPool, settings: Settings, log) -> None:
        self.classifier, self.pool, self.settings, self.log = classifier, pool, settings, log
        self.model_id = classifier.info.model_id
        self.progress = Progress(0, log)
        self.summary: Counter = Counter()  # over every `run`: one import is many runs, one per task
        self.albums: Counter = Counter()

    def summary_line(self) -> str:
        return summary_line(self.summary, self.albums)

    def _count(self, unit: Unit, outcome: str) -> None:
        (self.summary if unit.album is None else self.albums)[outcome] += 1

    def _skip_reason(self, unit: Unit) -> str | None:
        min_confidence = self.settings.min_confidence
        if unit.album is None:
            return skip_reason(unit.items[0], self.model_id, min_confidence)
        targets = [item for item in unit.items if not user_tagged(item)]
        if not targets:
            return "every track already has genres"
        reasons = [skip_reason(item, self.model_id, min_confidence) for item in targets]
        return reasons[0] if all(reasons) else None

    def run(
        self,
        items: Iterable[Item],
        force: bool,
        pretend: bool,
        write: Write | None,
        show_skipped: bool,
        show_progress: bool = True,
    ) -> None:
        """Classify `items` (by album or by track, as `settings.source` says) and set their
        fields, adding the outcomes to `summary` and `albums`.

        write: writes an item's genre tag, returning why it could not (None: tags are left to
        the caller). show_skipped: print each skipped track or album with its reason, not just
        count it. show_progress: a bar on a terminal (not during an import, whose prompts it
        would garble).
        """
        todo: list[Unit] = []
        for unit in group_units(items, self.settings.source):
            reason = None if force else self._skip_reason(unit)
            if reason is None:
                todo.append(unit)
                continue
            self._count(unit, "skipped")
            name = label(unit.items[0]) if unit.album is None else format(unit.album)
            if show_skipped:
                ui.print_(f"{name}\n  skipped: {reason}")
            else:
                self.log.debug("skipping {}: {}", name, reason)
        tracks = [(unit, item) for unit in todo for item in unit.items]
        progress = self.progress = Progress(len(tracks) if show_progress else 0, self.log)
        waiting: dict[int, dict[int, Outcome]] = {}  # album unit -> its tracks' outcomes so far
        try:
            with stop_requests() as stop:
                paths = [item.filepath for _, item in tracks]
                outcomes = classify_files(self.classifier, paths, self.settings.max_windows, pool=self.pool)
                for done, outcome in enumerate(outcomes, 1):
                    unit, item = tracks[outcome.index]
                    if unit.album is None:
                        self._count(unit, self._apply(item, outcome, force, pretend, write))
                    else:
                        gathered = waiting.setdefault(id(unit), {})
                        gathered[item.id] = outcome
                        if len(gathered) == len(unit.items):
                            del waiting[id(unit)]
                            self._count(unit, self._apply_album(unit, gathered, force, pretend, write))
                    progress.update(done)
                    if stop.is_set():
                        outcomes.close()  # waits for the decoders in flight, starts no new ones
                        raise KeyboardInterrupt
        except GenreModelError as exc:
            raise ui.UserError(f"genreclass: {exc}") from None
        except KeyboardInterrupt:
            raise ui.UserError("genreclass: interrupted; finished tracks are saved, run again to continue") from None
        finally:
            progress.clear()
            self.summary["decoded"] += len(tracks)
            self.summary["seconds"] += time.monotonic() - progress.started

    def _print(self, text: str) -> None:
        self.progress.clear()  # the bar is redrawn on the next update
        ui.print_(text)

    def _verdict(self, prediction: TrackPrediction) -> tuple[list[str], str]:
        """The genres to write (the `map` applied) and the top genres as text."""
        settings = self.settings
        genres = prediction.selected(settings.count, settings.min_confidence, settings.rename)
        ranked = ", ".join(f"{label} {p:.2f}" for label, p in prediction.genres[: max(3, settings.count)])
        return genres, ranked

    def _failed(self, item: Item, outcome: Outcome) -> bool:
        """Log a track that could not be classified, once, with its path and the reason."""
        if outcome.error is None:
            return False
        self.progress.clear()
        self.log.error("{}: {}", item.filepath, outcome.error.reason)
        return True

    def _mark(self, item: Item, prediction: TrackPrediction) -> None:
        item.genreclass_confidence = prediction.confidence
        item.genreclass_model = self.model_id

    def _uncertain(self, name: str, items: list[Item], prediction: TrackPrediction, ranked: str, pretend: bool) -> str:
        self._print(f"{name}\n  uncertain: no genre reaches min_confidence {self.settings.min_confidence:g} ({ranked})")
        for item in items:
            if not pretend and not item.get("genres"):
                # Recorded so that reruns skip it, unless forced or the threshold is lowered.
                self._mark(item, prediction)
                item.store()
        return "uncertain"

    def _store(self, item: Item, changed: bool, force: bool, write: Write | None) -> bool:
        """Write (when asked and needed) and store an item whose fields are set; False if its tag
        could not be written, in which case the database keeps its old values (a rerun retries)."""
        if write is not None and (changed or force):  # forced: the file may lack a tag the database has
            reason = write(item)
            if reason:
                self.log.error(
                    "{}: cannot write tags ({}); it would be {}", item.filepath, reason, "; ".join(item.genres)
                )
                item.load()
                return False
        item.store()
        return True

    def _apply(self, item: Item, outcome: Outcome, force: bool, pretend: bool, write: Write | None) -> str:
        """Set one track's fields from its outcome and show it; returns its summary key."""
        if self._failed(item, outcome):
            return "failed"
        prediction = outcome.prediction
        genres, ranked = self._verdict(prediction)
        if not genres:
            return self._uncertain(label(item), [item], prediction, ranked, pretend)
        changed = list(item.get("genres") or []) != genres
        item.genres = genres
        self.progress.clear()
        ui.print_(label(item))
        ui.show_model_changes(item, fields=["genres"], print_obj=False)
        ui.print_(f"  {'would be ' if pretend else ''}{'; '.join(genres)} ({ranked})")
        if pretend:
            item.load()  # pretend changes nothing, not even this object
            return "classified" if changed else "unchanged"
        self._mark(item, prediction)
        if not self._store(item, changed, force, write):
            return "failed"
        return "classified" if changed else "unchanged"

    def _apply_album(
        self, unit: Unit, outcomes: dict[int, Outcome], force: bool, pretend: bool, write: Write | None
    ) -> str:
        """Pool an album's tracks into one verdict and set it on the album and on each of its
        tracks that has no genres of the user's (all of them when forced); returns the album's
        summary key. A track that fails is logged and counted on its own, and left as it was."""
        album = unit.album
        decoded = [item for item in unit.items if not self._failed(item, outcomes[item.id])]
        self.summary["failed"] += len(unit.items) - len(decoded)
        if not decoded:
            return "failed"
        prediction = pool_tracks([outcomes[item.id].prediction for item in decoded])
        genres, ranked = self._verdict(prediction)
        targets = [item for item in decoded if force or not user_tagged(item)]
        name = format(album)
        if not genres:
            return self._uncertain(name, targets, prediction, ranked, pretend)
        changed = [list(item.get("genres") or []) != genres for item in targets]
        # The album's own field follows the verdict unless the user's genres are on the album.
        set_album = force or not album.get("genres") or not any(user_tagged(item) for item in unit.items)
        if set_album:
            changed.append(list(album.get("genres") or []) != genres)
            album.genres = genres
        self.progress.clear()
        ui.print_(name)
        if set_album:
            ui.show_model_changes(album, fields=["genres"], print_obj=False)
        n = (
            f"{len(targets)} of {len(unit.items)} tracks"
            if len(targets) < len(unit.items)
            else f"{len(targets)} tracks"
        )
        ui.print_(f"  {'would be ' if pretend else ''}{'; '.join(genres)} on {n} ({ranked})")
        if pretend:
            album.load()
            return "classified" if any(changed) else "unchanged"
        for item, item_changed in zip(targets, changed):
            item.genres = genres
            self._mark(item, prediction)
            if not self._store(item, item_changed, force, write):
                self.summary["failed"] += 1
        if set_album:
            album.store(inherit=False)  # the tracks are set above, each only if it is a target
        return "classified" if any(changed) else "unchanged"
