"""The worker behind `beet genreclass` and the import stage: classify items, set their fields.

Results go to stdout (`ui.print_`, `ui.show_model_changes`), one entry per track or group and a
summary (`RunSummary`); diagnostics (a file that cannot be read or written) go to the plugin's
log. Tags are written only when the caller says so: the import stage leaves that to
`import_task_files`, after beets has copied or moved the files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from beets import config as beets_config
from beets import ui
from beets.library import Album, Item

from genre_model import (
    Classifier,
    DecoderPool,
    GenreModelError,
    Outcome,
    TrackPrediction,
    classify_files,
    in_input_order,
    pool_tracks,
)
from genre_model.provenance import CONFIDENCE_FIELD, GENRES_FIELD, MODEL_FIELD, Origin, genres_origin, with_verdict

from . import failures, tags
from .progress import Progress, stop_requests
from .save_queue import SaveQueue
from .settings import Settings
from .summary import RunSummary, plural
from .units import Unit, group_units, own_fields, user_tagged

# Each track's own verdict, kept beside the one it was given: in an album (or with its artist)
# the pooled verdict hides a track that alone would be something else. The model's top label
# (before `map`, as the probabilities shown) and its probability 0..1.
TRACK_GENRE_FIELD = "genreclass_track_genre"
TRACK_CONFIDENCE_FIELD = "genreclass_track_confidence"
TRACK_FIELDS = (TRACK_GENRE_FIELD, TRACK_CONFIDENCE_FIELD)


def label(item: Item) -> str:
    """How a track is named in results: beets' item format, or its path when it has no title."""
    return format(item) if item.get("title") else item.filepath.as_posix()


def skip_reason(item: Item, model_id: str, min_confidence: float, fallback: str = "") -> str | None:
    """Why `item` needs no classifying by model `model_id` (None: it does). fallback: the
    genre an uncertain track without genres gets now (a track left without one when there was
    no fallback is judged again, to get it; one holding it, once the threshold drops to its
    confidence)."""
    fields = own_fields(item)
    origin = genres_origin(fields)
    recorded = "; ".join(fields.get(GENRES_FIELD) or [])
    if origin is Origin.USER:
        if fields.get(MODEL_FIELD) and recorded:
            return f"its genres were changed by hand ({'; '.join(item.genres)}; genreclass wrote {recorded})"
        return f"already has genres ({'; '.join(item.genres)})"
    if origin is Origin.CLEARED:
        return f"its genres were removed by hand (genreclass wrote {recorded})"
    if origin is Origin.UNRECORDED:
        return f"classified by an earlier genreclass that did not record its genres ({'; '.join(item.genres)})"
    if fields.get(MODEL_FIELD) == model_id:
        confidence = float(fields.get(CONFIDENCE_FIELD) or 0.0)
        if confidence < min_confidence and not (fallback and not item.get("genres")):
            # Found uncertain before, and the threshold is no lower now.
            return f"uncertain last time ({confidence:.3f} < min_confidence {min_confidence:g})"
        if item.get("genres") and list(item.get("genres")) != [fallback]:
            return f"already classified by {model_id}"  # (the fallback is no verdict: judged again once sure)
    return None


def corrected(item: Item) -> bool:
    """The user changed (or removed) genres that genreclass wrote."""
    fields = own_fields(item)
    written = fields.get(MODEL_FIELD) and fields.get(GENRES_FIELD)  # with keep_existing it may have added none
    return bool(written) and genres_origin(fields) in (Origin.USER, Origin.CLEARED)


# Stores an item whose fields are set; the bool says whether its file's genre tag needs
# writing. Returns why the tag could not be written (the item is then as stored before), or
# None. Raises `tags.LibraryError` when the database cannot be written.
Save = Callable[[Item, bool], str | None]


def pretended(pretend: bool, changed: bool) -> str:
    """The words before a verdict: 'would be ' under --pretend ('would stay ' when the tags already
    say it), nothing when it is written."""
    if not pretend:
        return ""
    return "would be " if changed else "would stay "


class Tagger:
    """Classifies items with one classifier and one decoder pool, and sets their genres.

    log: the plugin's logger. pool: decoder processes kept across calls (one import, many tasks).
    summary: every track's outcome and the decoding time, added up over every `run`.
    """

    def __init__(self, classifier: Classifier, pool: DecoderPool, settings: Settings, log) -> None:
        self.classifier, self.pool, self.settings, self.log = classifier, pool, settings, log
        self.model_id = classifier.info.model_id
        self.progress = Progress(0, log)
        self.summary = RunSummary()  # over every `run`: one import is many runs, one per task
        self._saves = SaveQueue(background=False)  # each `run` makes its own
        self._show_own = False  # each track's own verdict under a group's (-v, --pretend)

    def summary_line(self) -> str:
        return self.summary.line()

    def _count(self, unit: Unit, outcome: str, n: int = 1) -> None:
        self.summary.add(outcome, unit.kind, unit.key, n)

    def _skip_reason(self, unit: Unit, items: list[Item]) -> str | None:
        """Why `items` (the unit's tracks that are worth decoding) need no judging, or None."""
        min_confidence = self.settings.min_confidence
        if unit.alone:
            return skip_reason(items[0], self.model_id, min_confidence, self.settings.fallback)
        targets = [item for item in items if not user_tagged(item)]
        if not targets:
            return "every track already has genres"
        reasons = [skip_reason(item, self.model_id, min_confidence, self.settings.fallback) for item in targets]
        return reasons[0] if all(reasons) else None

    def _skip(self, unit: Unit, name: str, reason: str, n: int, show: bool, say: bool = False) -> None:
        """Count `n` of the unit's tracks as skipped; print why with `show` (pretend) or `say`
        (one line, for what a user should hear of on every run), else log it."""
        self._count(unit, "skipped", n)
        if show:
            ui.print_(f"{name}\n  skipped: {reason}")
        elif say:
            ui.print_(f"{name}: skipped: {reason}")
        else:
            self.log.debug("skipping {}: {}", name, reason)

    def _select(self, units: list[Unit], force: bool, show_skipped: bool) -> list[tuple[Unit, list[Item]]]:
        """The units to judge, each with the tracks to decode; the rest counted as skipped."""
        todo = []
        for unit in units:
            failing = {} if force else {item.id: failures.still_failing(item) for item in unit.items}
            for item in unit.items:
                if failing.get(item.id):  # decoding it again would fail again, and log its error again
                    detail = f" ({failing[item.id]})" if show_skipped else ""
                    self._skip(unit, label(item), f"failed before; unchanged since{detail}", 1, show_skipped, say=True)
            rest = [item for item in unit.items if not failing.get(item.id)]
            if not rest:
                continue
            reason = None if force else self._skip_reason(unit, rest)
            if reason is None:
                todo.append((unit, rest))
                continue
            name = label(rest[0]) if unit.alone else unit.name
            # A correction is always said, so that a user who made one sees it is kept.
            say = unit.alone and corrected(rest[0])
            if say and not show_skipped:
                ui.print_(f"{name}: keeps {'; '.join(rest[0].genres) or 'no genres'}: {reason}")
                self._count(unit, "skipped")
            else:
                self._skip(unit, name, reason, len(rest), show_skipped)
        return todo

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
        """Classify `items` (by album, by artist or by track, as `settings.source` says) and
        set their fields, adding the outcomes to `summary`.

        save: stores each changed item (and writes its tag, as it decides). show_skipped: print
        each skipped track or group with its reason, not just count it. show_progress: a bar on
        a terminal (not during an import, whose prompts it would garble). from_command: a `beet
        genreclass` run, on the files the library holds (an import stage is given the user's
        originals, which are never touched): a copy a killed run left beside a file is finished
        or removed first, and saves run on a thread of their own (`SaveQueue`).
        """
        self._show_own = pretend or beets_config["verbose"].get(int) > 0
        units = group_units(items, self.settings.source)
        if from_command and not pretend:
            for unit in units:
                for item in unit.items:  # a run killed mid-write left a copy: finish or undo it first
                    tags.finish_interrupted_write(item)
        todo = self._select(units, force, show_skipped)
        tracks = [(unit, item) for unit, decode in todo for item in decode]
        # The bar counts the files it goes through: those skipped above are not among them.
        progress = self.progress = Progress(len(tracks) if show_progress else 0, self.log)
        waiting: dict[int, dict[int, Outcome]] = {}  # group unit -> its tracks' outcomes so far
        sizes = {id(unit): len(decode) for unit, decode in todo}
        saves = self._saves = SaveQueue(background=from_command and not pretend)
        try:
            with stop_requests() as stop:
                paths = [item.filepath for _, item in tracks]
                # In the order of the tracks, so that results print the same on every run.
                outcomes = in_input_order(
                    classify_files(self.classifier, paths, self.settings.max_windows, pool=self.pool)
                )
                for done, outcome in enumerate(outcomes, 1):
                    unit, item = tracks[outcome.index]
                    if unit.alone:
                        self._apply(unit, item, outcome, force, pretend, save)
                    else:
                        gathered = waiting.setdefault(id(unit), {})
                        gathered[item.id] = outcome
                        if len(gathered) == sizes[id(unit)]:
                            del waiting[id(unit)]
                            self._apply_group(unit, gathered, force, pretend, save)
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
            progress.finish()
            self.summary.decoded += len(tracks)
            self.summary.seconds += time.monotonic() - progress.started

    def _print(self, text: str) -> None:
        self.progress.clear()  # the bar is redrawn on the next update
        ui.print_(text)

    def _verdict(self, prediction: TrackPrediction) -> tuple[list[str], str]:
        """The genres to write (the `map` applied) and the top genres as text."""
        settings = self.settings
        genres = prediction.selected(settings.count, settings.min_confidence, settings.rename)
        ranked = ", ".join(f"{label} {p:.2f}" for label, p in prediction.genres[: max(3, settings.count)])
        return genres, ranked

    def _store_later(self, item: Item) -> None:
        """Store fields that need no tag (in order with the saves queued before)."""
        self._saves.put(lambda: tags.store(item), lambda _: None)

    def _failed(self, unit: Unit, item: Item, outcome: Outcome, pretend: bool) -> bool:
        """Log a track that could not be classified, once, with its path and the reason; count
        it, and remember the failure so that reruns skip the file until it changes."""
        if outcome.error is None:
            return False
        self.progress.clear()
        self.log.error("{}: {}", item.filepath, outcome.error.reason)
        if outcome.error.detail:  # the decoder's own words, for whoever digs deeper (-v)
            self.log.debug("{}: {}", item.filepath, outcome.error.detail)
        self._count(unit, "failed")
        if not pretend:
            failures.remember(item, outcome.error.reason)
            self._store_later(item)
        return True

    def _mark(self, item: Item | Album, prediction: TrackPrediction, genres: list[str]) -> None:
        """Record the verdict beside the genres: who judged, how sure, and what it wrote (so
        that genres changed since are known to be the user's)."""
        item[CONFIDENCE_FIELD] = prediction.confidence
        item[MODEL_FIELD] = self.model_id
        if genres or item.get("genres"):  # [] beside genres: all of them are the user's (keep_existing)
            item[GENRES_FIELD] = list(genres)
        elif own_fields(item).get(GENRES_FIELD) is not None:  # not an album's, which `del` cannot reach
            del item[GENRES_FIELD]

    @staticmethod
    def _mark_own(item: Item, own: TrackPrediction) -> None:
        """Record the track's own verdict (`TRACK_FIELDS`); a failure it had is behind it."""
        item[TRACK_GENRE_FIELD] = own.top
        item[TRACK_CONFIDENCE_FIELD] = own.confidence
        failures.forget(item)

    def _show_tracks(self, items: list[Item], own: dict[int, TrackPrediction]) -> None:
        """Under a group's verdict, each track's own (with -v, and in pretend)."""
        if self._show_own:
            for item in items:
                ui.print_(f"    {label(item)}: on its own {own[item.id].top} {own[item.id].confidence:.2f}")

    def _with_verdict(self, item: Item | Album, genres: list[str], force: bool) -> tuple[list[str], list[str]]:
        """(`item`'s genres with the verdict `genres`, the part genreclass sets). Genres that are
        not genreclass's stay unless forced without `keep_existing` (unforced, only a kept
        track, `Origin.KEPT`, reaches here with some)."""
        return with_verdict(item, genres, keep_others=self.settings.keep_existing or not force)

    def _uncertain(
        self, unit: Unit, name: str, items: list[Item], prediction: TrackPrediction, ranked: str,
        own: dict[int, TrackPrediction], pretend: bool, force: bool, save: Save,
    ) -> None:  # fmt: skip
        """Record an uncertain verdict on `items` (the unit's tracks genreclass may change) and
        count each as uncertain; those without genres get the `fallback` genre, if one is set."""
        fallback = self.settings.fallback
        judged = [item for item in items if not user_tagged(item)]
        given = [item for item in judged if fallback and not item.get("genres")]
        line = f"{name}\n  uncertain: no genre reaches min_confidence {self.settings.min_confidence:g} ({ranked})"
        if given:
            on = "" if unit.alone else f" on {plural(len(given), 'track')}"  # those of the group without genres
            line += f"; {'would get' if pretend else 'gets'} the fallback genre {fallback}{on}"
        self._print(line)
        if unit.alone and given:
            ui.show_model_changes(Item(genres=[fallback]), given[0], fields=["genres"], print_obj=False)
        if pretend:
            self._count(unit, "uncertain", len(items))
            return
        for item in items:
            if any(item is other for other in given):
                item.genres = [fallback]
                self._mark(item, prediction, [fallback])
                self._mark_own(item, own[item.id])
                self._store(unit, item, True, force, save, outcome="uncertain")
                continue
            self._count(unit, "uncertain")
            if not user_tagged(item):
                # Recorded so that reruns skip it, unless forced or the threshold is lowered. Genres
                # an earlier verdict wrote stay (and stay genreclass's); the user's are not marked.
                self._mark(item, prediction, list(own_fields(item).get(GENRES_FIELD) or []))
                self._mark_own(item, own[item.id])
                tags.store(item)
        # The album records the pooled verdict too (so `beet ls -a genreclass_confidence:..0.6` finds
        # uncertain albums); it gets the fallback where its tracks did, else keeps what it has.
        for album in unit.albums:
            if user_tagged(album):
                continue
            if given and not album.get("genres"):
                album.genres = [fallback]
                self._mark(album, prediction, [fallback])
            else:
                self._mark(album, prediction, list(album.get(GENRES_FIELD) or []))
            self._saves.put(lambda album=album: tags.store(album, inherit=False), lambda _: None)

    def _store(
        self, unit: Unit, item: Item, changed: bool, force: bool, save: Save, outcome: str | None = None
    ) -> None:
        """Save an item whose fields are set, its tag written where it changed (or when forced:
        the file may lack a tag the database has), and count it once saved: as `outcome`, or as
        classified or unchanged, or as failed if the tag could not be written, in which case the
        database keeps its old values (a rerun retries)."""
        genres = "; ".join(item.genres)

        def saved(reason: str | None) -> None:
            if reason:
                self.progress.clear()
                self.log.error("{}: cannot write tags ({}); it would be {}", item.filepath, reason, genres)
            self._count(unit, "failed" if reason else outcome or ("classified" if changed else "unchanged"))

        self._saves.put(lambda: save(item, changed or force), saved)

    def _apply(self, unit: Unit, item: Item, outcome: Outcome, force: bool, pretend: bool, save: Save) -> None:
        """Set one track's fields from its outcome, show it, and count it (once saved)."""
        if self._failed(unit, item, outcome, pretend):
            return
        prediction = outcome.prediction
        genres, ranked = self._verdict(prediction)
        if not genres:
            self._uncertain(unit, label(item), [item], prediction, ranked, {item.id: prediction}, pretend, force, save)
            return
        genres, ours = self._with_verdict(item, genres, force)
        changed = list(item.get("genres") or []) != genres
        item.genres = genres
        self.progress.clear()
        ui.print_(label(item))
        ui.show_model_changes(item, fields=["genres"], print_obj=False)
        ui.print_(f"  {pretended(pretend, changed)}{'; '.join(genres)} ({ranked})")
        if pretend:
            item.load()  # pretend changes nothing, not even this object
            self._count(unit, "classified" if changed else "unchanged")
            return
        self._mark(item, prediction, ours)
        self._mark_own(item, prediction)
        self._store(unit, item, changed, force, save)

    def _apply_group(self, unit: Unit, outcomes: dict[int, Outcome], force: bool, pretend: bool, save: Save) -> None:
        """Pool a group's decoded tracks (an album's, an artist's) into one verdict and set it on
        each of them that has no genres of the user's (all of them when forced), and on the
        unit's albums unless their genres are the user's. Each track is counted once: a track
        that fails is logged and counted as failed and left as it was; one that keeps the user's
        genres is counted as skipped (it still informs the verdict)."""
        items = [item for item in unit.items if item.id in outcomes]
        decoded = [item for item in items if not self._failed(unit, item, outcomes[item.id], pretend)]
        if not decoded:
            return
        own = {item.id: outcomes[item.id].prediction for item in decoded}
        prediction = pool_tracks(list(own.values()))
        genres, ranked = self._verdict(prediction)
        targets = [item for item in decoded if force or not user_tagged(item)]
        kept = [item for item in decoded if not force and user_tagged(item)]
        self._count(unit, "skipped", len(kept))
        if not pretend:
            for item in kept:  # not re-marked, but a failure they had is behind them
                if failures.forget(item):
                    self._store_later(item)
        if not genres:
            self._uncertain(unit, unit.name, targets, prediction, ranked, own, pretend, force, save)
            self._show_tracks(decoded, own)
            return
        new = {item.id: self._with_verdict(item, genres, force) for item in targets}
        changed = {item.id: list(item.get("genres") or []) != new[item.id][0] for item in targets}
        # An album's own field follows the verdict unless it holds the user's genres.
        albums = [album for album in unit.albums if force or not user_tagged(album)]
        album_new = [self._with_verdict(album, genres, force) for album in albums]
        for album, (album_genres, _) in zip(albums, album_new, strict=True):
            album.genres = album_genres
        self.progress.clear()
        ui.print_(unit.name)
        if unit.kind == "album":
            for album in albums:
                ui.show_model_changes(album, fields=["genres"], print_obj=False)
        # The tracks the genres go on, then why the others of the group do not get them.
        notes = []
        if kept:
            notes.append(f"{plural(len(kept), 'track')} {'keeps its' if len(kept) == 1 else 'keep their'} own genres")
        if len(decoded) < len(items):
            notes.append(f"{len(items) - len(decoded)} failed")
        ui.print_(
            f"  {pretended(pretend, any(changed.values()))}{'; '.join(genres)} on {plural(len(targets), 'track')} ({ranked})"
            + "".join(f"; {note}" for note in notes)
        )
        if unit.kind == "artist" and albums:  # the line above says whether it is done or pretended
            names = "; ".join(album.get("album") or format(album) for album in albums)
            ui.print_(f"  and on {'the album' if len(albums) == 1 else 'the albums'} {names}")
        for item in kept:  # the user's own genres stay, and the output says so
            ui.print_(f"  {label(item)}: keeps {'; '.join(item.genres) or 'no genres'}: {skip_reason(item, '', 0)}")
        for item in targets:
            if new[item.id][0] != genres:  # keep_existing: its own genres first
                ui.print_(
                    f"  {label(item)}: {'would be ' if pretend else ''}{'; '.join(new[item.id][0])} (its own kept)"
                )
        self._show_tracks(decoded, own)
        if pretend:
            for album in albums:
                album.load()
            self._count(unit, "classified", sum(changed.values()))
            self._count(unit, "unchanged", len(targets) - sum(changed.values()))
            return
        for item in targets:
            item.genres, ours = new[item.id]
            self._mark(item, prediction, ours)
            self._mark_own(item, own[item.id])
            self._store(unit, item, changed[item.id], force, save)
        for album, (_, album_ours) in zip(albums, album_new, strict=True):
            self._mark(album, prediction, album_ours)
            # After its tracks (one saving thread, in order); they are set above, each only if a target.
            self._saves.put(lambda album=album: tags.store(album, inherit=False), lambda _: None)
