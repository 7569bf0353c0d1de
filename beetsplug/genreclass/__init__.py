"""Classify each track's genre from its audio and write it into beets' ``genres`` field.

Wiring only: decoding, features and the model live in `genre_model`; retraining on the
library (`beet genreclass-train`) lives in `training.pipelines.retrain`, imported only when asked for.

With ``auto: yes`` the import stage classifies each task's items and stores the verdicts in
the library; the genre tag is written into the files only at ``import_task_files``, after
beets has copied or moved them, so a user's original files never change on import (unless
the library uses them in place and ``import.write`` asks for tags). With ``source: artist``
the tracks of one artist may come in many tasks: they are judged together when the import
ends, in the files the library then holds.
"""

from __future__ import annotations

import sys
import threading

import beets
import confuse
from beets import ui
from beets.dbcore import types
from beets.library import Item
from beets.plugins import BeetsPlugin

from genre_model import Classifier, DecoderPool, ModelError
from genre_model.provenance import CONFIDENCE_FIELD, FIELDS, GENRES_FIELD, MODEL_FIELD

from . import failures, tags
from .run_lock import LibraryBusy, RunLock, command_line
from .settings import DEFAULTS, SOURCES, Settings, check_rename, read_settings, setting_error, unknown_keys
from .tagger import TRACK_CONFIDENCE_FIELD, TRACK_FIELDS, TRACK_GENRE_FIELD, Tagger
from .train_command import add_options, train_command

_FIELD_TYPES = {
    # Three decimals: 0.302 and 0.298 fall on either side of a 0.3 threshold.
    CONFIDENCE_FIELD: types.Float(3),
    MODEL_FIELD: types.STRING,
    GENRES_FIELD: types.MULTI_VALUE_DSV,  # a list, as `genres` itself
}
# A track's own verdict beside its album's (or artist's), and a file that could not be decoded.
_TRACK_TYPES = {
    TRACK_GENRE_FIELD: types.STRING,
    TRACK_CONFIDENCE_FIELD: types.Float(3),
    failures.FAILED_FIELD: types.STRING,
    failures.FAILED_MTIME_FIELD: types.STRING,  # nanoseconds, as text (see `failures`)
    failures.FAILED_SIZE_FIELD: types.INTEGER,
}


class GenreClassPlugin(BeetsPlugin):
    item_types = {**_FIELD_TYPES, **_TRACK_TYPES}
    album_types = _FIELD_TYPES

    def __init__(self) -> None:
        super().__init__()
        self.config.add(DEFAULTS)
        self._settings: Settings | None = None
        self._tagger: Tagger | None = None
        self._pool: DecoderPool | None = None
        # Items classified at import whose tag waits for their files to be in place: item id ->
        # the fields it had before, restored if the tag cannot be written.
        self._unwritten: dict[int, dict] = {}
        self._lock = threading.Lock()
        # `source: artist` on import: the ids of the imported items, judged when the import ends.
        self._imported_ids: list[int] = []
        self._run_lock: RunLock | None = None  # one writing run per library (`run_lock`)
        # Always registered (reading `auto` here could not report a bad value): the stage
        # checks `auto` itself, from settings validated at `import_begin`.
        self.import_stages = [self.import_stage]
        self.register_listener("import_begin", self.import_begin)
        self.register_listener("import_task_files", self.import_task_files)
        self.register_listener("import", self.import_end)
        self.register_listener("cli_exit", self.close)

    # -- settings, model and decoder pool: made once, before any file is touched -----------

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = read_settings(self.config)
            for warning in unknown_keys(self.config):
                self._log.warning("{}", warning)
        return self._settings

    def tagger(self) -> Tagger:
        """The tagger for this beets command: settings checked, model loaded (raises `UserError`)."""
        if self._tagger is None:
            settings = self.settings()
            classifier = Classifier(settings.model, settings.device, settings.vote, settings.batch_size)
            try:
                labels = classifier.info.labels  # load now: a bad model stops the run before any file is touched
            except ModelError as exc:
                raise ui.UserError(f"genreclass: {exc}") from None
            check_rename(settings.rename, labels)
            self._log.debug("model {} on {}", classifier.info.model_id, ", ".join(classifier.providers))
            # One pool for the whole command; its processes start on the first file.
            self._pool = DecoderPool(settings.workers, lambda n: self._log.debug("starting {} decoder processes", n))
            self._tagger = Tagger(classifier, self._pool, settings, self._log)
        return self._tagger

    def close(self, lib=None) -> None:
        """End the decoder processes and let other runs write (``cli_exit``)."""
        if self._pool is not None:
            self._pool.close()
        if self._run_lock is not None:
            self._run_lock.release()

    def lock_library(self, lib) -> None:
        """Become the one genreclass run that writes to `lib` (raises `UserError` if another is)."""
        if lib.path == ":memory:":
            return
        if self._run_lock is None:
            self._run_lock = RunLock(lib.path)
        try:
            self._run_lock.acquire(command_line())
        except LibraryBusy as exc:
            raise ui.UserError(f"genreclass: {exc}") from None
        except OSError as exc:
            raise ui.UserError(f"genreclass: cannot lock the library ({self._run_lock.path}: {exc.strerror})") from None

    # -- beet genreclass ------------------------------------------------------------------

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("genreclass", help="classify genres from the audio and write them to tags")
        cmd.parser.usage = "%prog [options] [QUERY]" + (
            "\n\nListen to each matching track (a few 3-second windows spread over it), vote over"
            "\nthe windows and set its 'genres' field. With 'source: album' (the default) the"
            "\nwhole album of each matching track gets one verdict, the mean of its tracks', set on"
            "\nthe album and its tracks; singletons and compilations are judged per track. With"
            "\n'source: artist' the matching tracks of each artist get one verdict. Tracks"
            "\n(albums) that already have genres, that this model has classified, or that it found"
            "\nuncertain (no genre reaching min_confidence) are skipped unless --force is given;"
            "\n--pretend lists them with the reason. In an album, tracks with genres of your own"
            "\nkeep them unless --force is given."
        )
        cmd.parser.add_option("-f", "--force", action="store_true", default=False,
                              help="classify tracks that already have genres or were already classified")  # fmt: skip
        cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                              help="show the genres that would be set; change no file and no database entry")  # fmt: skip
        cmd.parser.add_option("-w", "--write", action="store_true", dest="write", default=None,
                              help="write the genres to the files' tags (default: import.write)")  # fmt: skip
        cmd.parser.add_option("-W", "--nowrite", action="store_true", dest="nowrite", default=False,
                              help="store the genres in the library database only")  # fmt: skip
        cmd.parser.add_option("-s", "--source", choices=SOURCES, default=None,
                              help="album: one verdict per album from all its tracks; artist: one per artist from "
                                   "the matching tracks; track: each track its own "
                                   "(default: the 'source' setting, as lastgenre's -s)")  # fmt: skip
        cmd.func = self.command
        train = ui.Subcommand("genreclass-train", help="train a genre model on this library's own genres")
        train.func = lambda lib, opts, args: train_command(self, lib, opts, args)
        add_options(train)
        return [cmd, train]

    def command(self, lib, opts, args: list[str]) -> None:
        if opts.write and opts.nowrite:
            raise ui.UserError("genreclass: -w/--write and -W/--nowrite contradict each other; give one of them")
        if not sys.stdout.isatty():  # `beet genreclass > genres.txt`: plain text, not beets' colour codes
            beets.config["ui"]["color"].set(False)
        if opts.source and self._tagger is None:  # read with the other settings when the tagger is made
            self.config["source"].set(opts.source)
            self._settings = None
        tagger = self.tagger()
        if not opts.pretend:
            self.lock_library(lib)
        items = list(lib.items(args))
        if not items:
            ui.print_("genreclass: no tracks match" + (f" '{' '.join(args)}'" if args else ""))
            return
        write = ui.should_write(False if opts.nowrite else opts.write)
        try:
            tagger.run(
                items,
                force=opts.force or self.settings().force,
                pretend=opts.pretend,
                save=lambda item, needs_tag: tags.save(item, write and needs_tag),
                show_skipped=opts.pretend,
            )
        finally:
            ui.print_(f"genreclass: {'pretend: ' if opts.pretend else ''}{tagger.summary_line()}")

    # -- import ---------------------------------------------------------------------------

    def _auto(self) -> bool:
        try:
            return self.config["auto"].get(bool)
        except confuse.ConfigError as exc:
            raise setting_error(exc) from None

    def import_begin(self, session) -> None:
        """With `auto`, check every setting, load the model and take the library's lock before
        the first task touches anything."""
        if self._auto():
            if not sys.stdout.isatty():  # `beet import ... > log.txt`: plain text, as for `beet genreclass`
                beets.config["ui"]["color"].set(False)
            self.tagger()
            self.lock_library(session.lib)

    def import_stage(self, session, task) -> None:
        """Classify the task's items and store the verdicts; their files are not written yet."""
        if not self._auto():
            return
        if self.settings().source == "artist":  # an artist's tracks may come in later tasks
            with self._lock:
                self._imported_ids += [item.id for item in task.imported_items()]
            return
        self.tagger().run(
            task.imported_items(),
            force=self.settings().force,
            pretend=False,
            save=self._save_later,
            show_skipped=False,
            show_progress=False,
            from_command=False,
        )

    def _save_later(self, item: Item, needs_tag: bool) -> None:
        """Store the verdict now; its tag is written once the file is in place (`import_task_files`)."""
        before = item.get_fresh_from_db()
        # The track's own fields, not its album's (`units.own_fields`).
        snapshot = {key: before.get(key, with_album=False) for key in ("genres", *FIELDS, *TRACK_FIELDS)}
        tags.store(item)
        if needs_tag:
            with self._lock:
                self._unwritten[item.id] = snapshot

    def import_task_files(self, session, task) -> None:
        """Write the genre tag into the files the library now holds (copies, moved files, or
        the originals when the library uses them in place), as ``import.write`` says."""
        write = ui.should_write()
        for item in task.imported_items():
            # A file that failed is remembered as the library now holds it (a copy, or beets' own
            # tags written into it), so that reruns skip it until it changes.
            if failures.restamp(item):
                tags.store(item)
            with self._lock:
                if item.id not in self._unwritten:
                    continue
                before = self._unwritten.pop(item.id)
            if not write:
                continue
            try:
                reason = tags.save(item, write=True)
            except tags.LibraryError as exc:
                raise ui.UserError(f"genreclass: {exc}") from None
            if reason:
                self._log.error("{}: cannot write tags ({}); its genres are left as they were", item.filepath, reason)
                # As if never classified, so that `beet genreclass` retries it.
                for key, value in before.items():
                    if value is not None:
                        item[key] = value
                    elif item.get(key, with_album=False) is not None:  # a genreclass field the item did not have
                        del item[key]
                tags.store(item)

    def import_end(self, lib, paths) -> None:
        """With `source: artist`, judge the imported tracks by artist now that every task is in
        the library; then the import's summary, on stdout like the rest of the import's report."""
        try:
            if self._tagger is not None and self._auto():
                if self._imported_ids:
                    self._judge_imported_artists(lib)
                ui.print_(f"genreclass: {self._tagger.summary_line()}")
        finally:
            if self._run_lock is not None:
                self._run_lock.release()

    def _judge_imported_artists(self, lib) -> None:
        """The imported tracks, as the library holds them now (moved or copied; those an import
        replaced or removed are gone), pooled by artist; tags written as ``import.write`` says."""
        with self._lock:
            ids, self._imported_ids = self._imported_ids, []
        items = [item for item in map(lib.get_item, ids) if item is not None]
        write = ui.should_write()
        self.tagger().run(
            items,
            force=self.settings().force,
            pretend=False,
            save=lambda item, needs_tag: tags.save(item, write and needs_tag),
            show_skipped=False,
        )
