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
from beets.library import Album, Item

from genre_model import Classifier, DecoderPool, GenreModelError, Outcome, TrackPrediction, classify_files, pool_tracks
from genre_model.provenance import CONFIDENCE_FIELD, GENRES_FIELD, MODEL_FIELD, Origin, genres_origin

from . import tags
from .progress import Progress, stop_requests
from .save_queue import SaveQueue
from .settings import Settings
from .units import Unit, group_units, own_fields, user_tagged

# Summary keys, in the order the summary line gives them.
OUTCOMES = ("classified", "unchanged", "uncertain", "skipped", "failed")


def label(item: Item) -> str:
    """How a track is named in results: beets' item format, or its path when it has no title."""
    return format(item) if item.get("title") else item.filepath.as_posix()


def skip_reason(item: Item, model_id: str, min_confidence: float) -> str | None:
    """Why `item` needs no classifying by model `model_id` (None: it does)."""
    fields = own_fields(item)
    origin = genres_origin(fields)
    recorded = "; ".join(fields.get(GENRES_FIELD) or [])
    if origin is Origin.USER:
        if fields.get(MODEL_FIELD):
            return f"its genres were changed by hand ({'; '.join(item.genres)}; genreclass wrote {recorded})"
        return f"already has genres ({'; '.join(item.genres)})"
    if origin is Origin.CLEARED:
        return f"its genres were removed by hand (genreclass wrote {recorded})"
    if origin is Origin.UNRECORDED:
        return f"classified by an earlier genreclass that did not record its genres ({'; '.join(item.genres)})"
    if fields.get(MODEL_FIELD) == model_id:
        confidence = float(fields.get(CONFIDENCE_FIELD) or 0.0)
        if confidence < min_confidence:  # found uncertain before, and the threshold is no lower now
            return f"uncertain last time ({confidence:.3f} < min_confidence {min_confidence:g})"
        if item.get("genres"):
            return f"already classified by {model_id}"
    return None


def corrected(item: Item) -> bool:
    """The user changed (or removed) genres that genreclass wrote."""
    fields = own_fields(item)
    return bool(fields.get(MODEL_FIELD)) and genres_origin(fields) in (Origin.USER, Origin.CLEARED)


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


# Stores an item whose fields are set; the bool says whether its file's genre tag needs
# writing. Returns why the tag could not be written (the item is then as stored before), or
# None. Raises `tags.LibraryError` when the database cannot be written.
Save = Callable[[Item, bool], str | None]


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
        self._saves = SaveQueue(background=False)  # each `run` makes its own

    def summary_line(self) -> str:
        return summary_line(self.summary, self.albums)

    def _count(self, unit: Unit, outcome: str | None) -> None:
        if outcome is not None:
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
        save: Save,
        show_skipped: bool,
        show_progress: bool = True,
        from_command: bool = True,
    ) -> None:
        """Classify `items` (by album or by track, as `settings.source` says) and set their
        fields, adding the outcomes to `summary` and `albums`.

        save: stores each changed item (and writes its tag, as it decides). show_skipped: print
        each skipped track or album with its reason, not just count it. show_progress: a bar on
        a terminal (not during an import, whose prompts it would garble). from_command: a `beet
        genreclass` run, on the files the library holds (an import stage is given the user's
        originals, which are never touched): a copy a killed run left beside a file is finished
        or removed first, and saves run on a thread of their own (`SaveQueue`).
        """
        todo: list[Unit] = []
        for unit in group_units(items, self.settings.source):
            if from_command and not pretend:
                for item in unit.items:  # a run killed mid-write left a copy: finish or undo it first
                    tags.finish_interrupted_write(item)
            reason = None if force else self._skip_reason(unit)
            if reason is None:
                todo.append(unit)
                continue
            self._count(unit, "skipped")
            name = label(unit.items[0]) if unit.album is None else format(unit.album)
            if show_skipped:
                ui.print_(f"{name}\n  skipped: {reason}")
            elif unit.album is None and corrected(unit.items[0]):  # a correction is always said
                ui.print_(f"{name}: keeps {'; '.join(unit.items[0].genres) or 'no genres'}: {reason}")
            else:
                self.log.debug("skipping {}: {}", name, reason)
        tracks = [(unit, item) for unit in todo for item in unit.items]
        progress = self.progress = Progress(len(tracks) if show_progress else 0, self.log)
        waiting: dict[int, dict[int, Outcome]] = {}  # album unit -> its tracks' outcomes so far
        saves = self._saves = SaveQueue(background=from_command and not pretend)
        try:
            with stop_requests() as stop:
                paths = [item.filepath for _, item in tracks]
                outcomes = classify_files(self.classifier, paths, self.settings.max_windows, pool=self.pool)
                for done, outcome in enumerate(outcomes, 1):
                    unit, item = tracks[outcome.index]
                    if unit.album is None:
                        self._count(unit, self._apply(item, outcome, force, pretend, save))
                    else:
                        gathered = waiting.setdefault(id(unit), {})
                        gathered[item.id] = outcome
                        if len(gathered) == len(unit.items):
                            del waiting[id(unit)]
                            self._count(unit, self._apply_album(unit, gathered, force, pretend, save))
                    saves.collect()
                    progress.update(done)
                    if stop.is_set():
                        outcomes.close()  # waits for the decoders in flight, starts no new ones
                        raise KeyboardInterrupt
                saves.drain()
                if stop.is_set():  # asked during the last saves: say so, though nothing was left
                    raise KeyboardInterrupt
        except (GenreModelError, tags.LibraryError) as exc:
            raise ui.UserError(f"genreclass: {exc}; finished tracks are saved") from None
        except KeyboardInterrupt:
            raise ui.UserError("genreclass: interrupted; finished tracks are saved, run again to continue") from None
        finally:
            try:
                saves.close()  # the verdicts already shown are saved before the run ends, however it ends
            except tags.LibraryError as exc:
                self.log.error("{}", exc)
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

    def _mark(self, item: Item | Album, prediction: TrackPrediction, genres: list[str]) -> None:
        """Record the verdict beside the genres: who judged, how sure, and what it wrote (so
        that genres changed since are known to be the user's)."""
        item[CONFIDENCE_FIELD] = prediction.confidence
        item[MODEL_FIELD] = self.model_id
        if genres:
            item[GENRES_FIELD] = list(genres)
        elif own_fields(item).get(GENRES_FIELD) is not None:  # not an album's, which `del` cannot reach
            del item[GENRES_FIELD]

    def _uncertain(self, name: str, items: list[Item], prediction: TrackPrediction, ranked: str, pretend: bool) -> str:
        self._print(f"{name}\n  uncertain: no genre reaches min_confidence {self.settings.min_confidence:g} ({ranked})")
        for item in items:
            if not pretend and not user_tagged(item):
                # Recorded so that reruns skip it, unless forced or the threshold is lowered. Genres
                # an earlier verdict wrote stay (and stay genreclass's); the user's are not marked.
                self._mark(item, prediction, list(item.get("genres") or []))
                tags.store(item)
        return "uncertain"

    def _store(self, item: Item, changed: bool, force: bool, save: Save, outcome: str | None) -> None:
        """Save an item whose fields are set, its tag written where it changed (or when forced:
        the file may lack a tag the database has), and count it once saved: as `outcome`
        (None: not counted, as an album's track) or as failed if the tag could not be written,
        in which case the database keeps its old values (a rerun retries)."""
        genres = "; ".join(item.genres)

        def saved(reason: str | None) -> None:
            if reason:
                self.progress.clear()
                self.log.error("{}: cannot write tags ({}); it would be {}", item.filepath, reason, genres)
            if reason or outcome:
                self.summary["failed" if reason else outcome] += 1

        self._saves.put(lambda: save(item, changed or force), saved)

    def _apply(self, item: Item, outcome: Outcome, force: bool, pretend: bool, save: Save) -> str | None:
        """Set one track's fields from its outcome and show it; returns its summary key (None:
        counted once it is saved)."""
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
        self._mark(item, prediction, genres)
        self._store(item, changed, force, save, "classified" if changed else "unchanged")
        return None

    def _apply_album(self, unit: Unit, outcomes: dict[int, Outcome], force: bool, pretend: bool, save: Save) -> str:
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
        changed = {item.id: list(item.get("genres") or []) != genres for item in targets}
        # The album's own field follows the verdict unless it holds the user's genres.
        set_album = force or not user_tagged(album)
        album_changed = set_album and list(album.get("genres") or []) != genres
        if set_album:
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
        for item in decoded:
            if item.id not in changed:  # the user's own genres stay, and the output says so
                ui.print_(f"  {label(item)}: keeps {'; '.join(item.genres) or 'no genres'}: {skip_reason(item, '', 0)}")
        outcome = "classified" if album_changed or any(changed.values()) else "unchanged"
        if pretend:
            album.load()
            return outcome
        for item in targets:
            item.genres = genres
            self._mark(item, prediction, genres)
            self._store(item, changed[item.id], force, save, None)
        if set_album:
            self._mark(album, prediction, genres)
            # After its tracks (one saving thread, in order); they are set above, each only if a target.
            self._saves.put(lambda: tags.store(album, inherit=False), lambda _: None)
        return outcome
