"""Classify each track's genre from its audio and write it into beets' ``genres`` field.

Wiring only: decoding, features and the model live in `genre_model`; retraining on the
library (`beet genreclass-train`) lives in `training.retrain`, imported only when asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TextIO

from beets import config as beets_config
from beets import plugins, ui
from beets.dbcore import types
from beets.library import Item
from beets.plugins import BeetsPlugin
from beets.util import syspath
from mediafile import MediaFile, UnreadableFileError

from genre_model import Classifier, GenreModelError, ModelError, Outcome, classify_files, resolve_workers
from genre_model.classifier import DEVICES, VOTES

# Seconds between progress lines on long runs.
_PROGRESS_EVERY_S = 5.0
# Packages of the `train` extra that `beet genreclass-train` needs.
_TRAIN_EXTRA = ("torch", "onnx", "matplotlib")


def _genreclass_dir() -> str:
    """``<beets config folder>/genreclass``: trained models and the installed one live here."""
    return os.path.join(beets_config.config_dir(), "genreclass")


def installed_model_path() -> str:
    """Where ``beet genreclass-train --install`` puts the model that replaces the bundled one."""
    return os.path.join(_genreclass_dir(), "model.onnx")


@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """Turn SIGINT/SIGTERM into a request to stop between tracks, so no tag write is cut in half.

    A second signal stops at once.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Progress:
    """Progress of a run on stderr: on a terminal, a bar redrawn in place with tracks/s and the
    time left; elsewhere (pipes, log files) one log line every `_PROGRESS_EVERY_S` seconds."""

    BAR_WIDTH = 30
    REDRAW_S = 0.1

    def __init__(self, total: int, log, stream: TextIO | None = None) -> None:
        self.total, self.log = total, log
        self.stream = stream or sys.stderr
        self.on_terminal = total > 0 and self.stream.isatty()
        self.started = self.last = time.monotonic()
        self.drawn = False

    def rate(self, done: int) -> float:
        return done / max(time.monotonic() - self.started, 1e-9)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.on_terminal:
            if now - self.last < self.REDRAW_S and done < self.total:
                return
            rate = self.rate(done)
            filled = self.BAR_WIDTH * done // self.total
            left = (self.total - done) / rate if rate > 0 else 0.0
            self.stream.write(
                f"\r\x1b[Kgenreclass: [{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] {done}/{self.total} tracks, "
                f"{rate:.1f} tracks/s, {int(left // 60)}:{int(left % 60):02d} left"
            )
            self.stream.flush()
            self.drawn, self.last = True, now
        elif now - self.last > _PROGRESS_EVERY_S and done < self.total:
            self.log.info("{}/{} tracks ({:.1f} tracks/s)", done, self.total, self.rate(done))
            self.last = now

    def clear(self) -> None:
        """Erase the bar so that a log line starts on a clean line (it is redrawn on the next update)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


class GenreClassPlugin(BeetsPlugin):
    item_types = {"genreclass_confidence": types.FLOAT, "genreclass_model": types.STRING}

    def __init__(self) -> None:
        super().__init__()
        self.config.add(
            {
                "auto": False,
                "model": "",  # empty: the installed model (genreclass-train --install), else the bundled one
                "device": "auto",
                "count": 1,
                "min_confidence": 0.3,
                "force": False,
                "max_windows": 8,
                "vote": "mean",
                "batch_size": 64,
                "workers": "auto",
            }
        )
        self._classifier: Classifier | None = None
        self._progress = _Progress(0, self._log)
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    # -- settings -------------------------------------------------------------------------

    def _classifier_for_run(self) -> Classifier:
        """The classifier described by the config, loaded and checked (raises `UserError`)."""
        if self._classifier is None:
            model = self._model_path()
            try:
                self._classifier = Classifier(
                    model,
                    device=self.config["device"].as_choice(DEVICES),
                    vote=self.config["vote"].as_choice(VOTES),
                    batch_size=self._positive_int("batch_size"),
                )
                _ = self._classifier.info  # load now: a bad model stops the run before any file is touched
            except ModelError as exc:
                raise ui.UserError(f"genreclass: {exc}") from None
        return self._classifier

    def _model_path(self) -> str | None:
        """The configured model, else the installed one, else None (the bundled model)."""
        if self.config["model"].get():
            return self.config["model"].as_filename()
        return installed_model_path() if os.path.exists(installed_model_path()) else None

    def _positive_int(self, key: str) -> int:
        value = self.config[key].get(int)
        if value < 1:
            raise ui.UserError(f"genreclass: '{key}' must be at least 1, got {value}")
        return value

    def _settings(self) -> dict:
        min_confidence = self.config["min_confidence"].as_number()
        if not 0 <= min_confidence <= 1:
            raise ui.UserError(f"genreclass: 'min_confidence' must be between 0 and 1, got {min_confidence}")
        workers = self.config["workers"].get()
        try:
            workers = resolve_workers(workers if workers == "auto" else int(workers))
        except (TypeError, ValueError):
            raise ui.UserError(f"genreclass: 'workers' must be 'auto' or a number >= 0, got {workers!r}") from None
        return {
            "count": self._positive_int("count"),
            "min_confidence": float(min_confidence),
            "max_windows": self._positive_int("max_windows"),
            "workers": workers,
        }

    # -- command and import stage ---------------------------------------------------------

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("genreclass", help="classify genres from the audio and write them to tags")
        cmd.parser.usage = "%prog [options] [QUERY]" + (
            "\n\nListen to each matching track (a few 3-second windows spread over it), vote over"
            "\nthe windows and set its 'genres' field. Tracks that already have genres, or that"
            "\nthis model has already classified, are skipped unless --force is given."
        )
        cmd.parser.add_option("-f", "--force", action="store_true", default=False,
                              help="classify tracks that already have genres or were already classified")  # fmt: skip
        cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                              help="show the genres that would be set; change no file and no database entry")  # fmt: skip
        cmd.parser.add_option("-w", "--write", action="store_true", dest="write", default=None,
                              help="write the genres to the files' tags (default: import.write)")  # fmt: skip
        cmd.parser.add_option("-W", "--nowrite", action="store_false", dest="write",
                              help="store the genres in the library database only")  # fmt: skip
        cmd.func = self.command
        return [cmd, self._train_command()]

    def _train_command(self) -> ui.Subcommand:
        cmd = ui.Subcommand("genreclass-train", help="train a genre model on this library's own genres")
        cmd.parser.usage = "%prog [options] [QUERY]" + (
            "\n\nLearn the genres of the matching tracks that have them (the first genre of each,"
            "\nin canonical spelling) and write a model in your vocabulary. Album artists are"
            "\nsplit so none is on both sides; the new model and the current one are then scored"
            "\non the held-out artists. Tracks whose genres genreclass itself set are not used."
            "\nNeeds the train extra: pip install 'beets-genreclass[train]'."
        )
        add = cmd.parser.add_option
        add("--vocabulary", metavar="LABELS", help="comma-separated genres to learn (default: every genre with --min-tracks tracks)")  # fmt: skip
        add("--min-tracks", type="int", default=10, metavar="N", help="fewest tracks a genre needs to be learnt [%default]")  # fmt: skip
        add("--alias", metavar="FILE", help="YAML mapping of genre spellings to canonical names, e.g. 'hip hop: Hip-Hop'")  # fmt: skip
        add("--epochs", type="int", default=30, metavar="N", help="training epochs [%default]")
        add("--from-scratch", action="store_true", default=False, help="random initial weights instead of the current model's")  # fmt: skip
        add("--valid-fraction", type="float", default=0.2, metavar="F", help="share of tracks held out, as whole album artists [%default]")  # fmt: skip
        add("--out", metavar="FILE", help="the .onnx to write [CONFIG/genreclass/personal-DATE.onnx]")
        add("--install", action="store_true", default=False, help="make the new model the one 'beet genreclass' uses")  # fmt: skip
        add("--cache", metavar="DIR", help="keep computed features here to speed up the next run [temporary]")  # fmt: skip
        cmd.func = self.train_command
        return cmd

    def command(self, lib, opts, args: list[str]) -> None:
        force = opts.force or self.config["force"].get(bool)
        self.classify(lib.items(args), write=ui.should_write(opts.write), force=force, pretend=opts.pretend)

    def imported(self, session, task) -> None:
        self.classify(
            task.imported_items(), write=ui.should_write(), force=self.config["force"].get(bool), pretend=False
        )

    def train_command(self, lib, opts, args: list[str]) -> None:
        missing = []
        for name in _TRAIN_EXTRA:
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)
        if missing:
            raise ui.UserError(
                f"genreclass-train: {', '.join(missing)} not installed; install the training extra with: "
                "pip install 'beets-genreclass[train]'"
            )
        from training import retrain as personal
        from training.backbone import BackboneError
        from training.datasets import load_beets
        from training.labels import read_aliases
        from training.splits import SplitLeakError

        if opts.epochs < 1 or opts.min_tracks < 1 or not 0 < opts.valid_fraction < 1:
            raise ui.UserError("genreclass-train: --epochs and --min-tracks must be >= 1, --valid-fraction in (0, 1)")
        vocabulary = [v.strip() for v in opts.vocabulary.split(",") if v.strip()] if opts.vocabulary else None
        try:
            aliases = read_aliases(opts.alias) if opts.alias else {}
        except ValueError as exc:
            raise ui.UserError(f"genreclass-train: {exc}") from None
        base = self._model_path()
        try:
            base_labels = Classifier(base, device="cpu").info.labels  # spelling of genres it knows
        except ModelError as exc:
            raise ui.UserError(f"genreclass-train: {exc}") from None
        tracks, left_out = load_beets(lib, args, aliases, vocabulary, spellings=base_labels)
        for reason, n in sorted(left_out.items()):
            self._log.info("{} tracks left out: {}", n, reason)
        version = time.strftime("%Y%m%d-%H%M%S")
        out = opts.out or os.path.join(_genreclass_dir(), f"personal-{version}.onnx")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        options = personal.RetrainOptions(
            epochs=opts.epochs,
            from_scratch=opts.from_scratch,
            base_model=base,
            workers=resolve_workers("auto"),
            version=version,
        )
        try:
            tracks, labels = personal.select_labels(tracks, vocabulary, opts.min_tracks)
            train, valid = personal.split_by_artist(tracks, labels, opts.valid_fraction)
            self._log.info(
                "{} genres: {}; {} tracks to train, {} held out", len(labels), ", ".join(labels), len(train), len(valid)
            )
            with contextlib.ExitStack() as stack:
                cache = opts.cache or stack.enter_context(tempfile.TemporaryDirectory(prefix="genreclass-features-"))
                result = personal.retrain(train, valid, labels, out, options, cache, log=self._log.info)
        except (personal.NotEnoughData, SplitLeakError, BackboneError, ModelError) as exc:
            raise ui.UserError(f"genreclass-train: {exc}") from None
        except KeyboardInterrupt:
            raise ui.UserError("genreclass-train: interrupted; no model written") from None
        for line in personal.comparison_lines(result.card):
            ui.print_(line)
        if opts.install:
            self._install(result.model_path)

    def _install(self, model: os.PathLike) -> None:
        """Copy `model` to the installed-model path in one atomic step."""
        target = installed_model_path()
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + ".partial"
        shutil.copyfile(model, tmp)
        os.replace(tmp, target)
        ui.print_(f"installed: 'beet genreclass' now uses {target}; delete that file to go back to the bundled model")
        if self.config["model"].get():
            self._log.warning("the configured genreclass.model ({}) still takes precedence", self.config["model"].get())

    # -- the worker -----------------------------------------------------------------------

    def classify(self, items: Iterable[Item], write: bool, force: bool, pretend: bool) -> Counter:
        """Classify `items` and set their genres; returns the summary counts."""
        settings = self._settings()
        classifier = self._classifier_for_run()
        model_id = classifier.info.model_id
        summary: Counter = Counter()
        todo: list[Item] = []
        for item in items:
            reason = None if force else self._skip_reason(item, model_id)
            if reason:
                summary["skipped"] += 1
                self._log.debug("skipping {}: {}", item.filepath, reason)
            else:
                todo.append(item)
        paths = [os.fsdecode(item.path) for item in todo]
        progress = self._progress = _Progress(len(todo), self._log)
        try:
            with _stop_requests() as stop:
                outcomes = classify_files(classifier, paths, settings["max_windows"], settings["workers"])
                for done, outcome in enumerate(outcomes, 1):
                    summary[self._apply(todo[outcome.index], outcome, model_id, settings, write, pretend)] += 1
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
            self._report(summary, pretend, progress)
        return summary

    @staticmethod
    def _skip_reason(item: Item, model_id: str) -> str | None:
        if item.get("genreclass_model") == model_id:
            return f"already classified by {model_id}"
        if item.get("genres") and not item.get("genreclass_model"):
            return "already has genres"
        return None

    def _apply(self, item: Item, outcome: Outcome, model_id: str, settings: dict, write: bool, pretend: bool) -> str:
        """Set one item's genres from its outcome; returns its summary key. Each failure is
        logged here, once, with the path and the reason."""
        if outcome.error is not None:
            self._progress.clear()
            self._log.error("{}: {}", item.filepath, outcome.error.reason)
            return "failed"
        prediction = outcome.prediction
        genres = prediction.selected(settings["count"], settings["min_confidence"])
        ranked = ", ".join(f"{label} {p:.2f}" for label, p in prediction.genres[: max(3, settings["count"])])
        if not genres:
            self._track_line(
                "{}: no genre reaches min_confidence {} ({})", item.filepath, settings["min_confidence"], ranked
            )
            return "uncertain"
        changed = list(item.get("genres") or []) != genres
        verdict = f"{'; '.join(genres)} ({ranked})"
        if pretend:
            self._progress.clear()  # pretend exists to show these: always, above the bar
            self._log.info("[pretend] {}: {}", item.filepath, verdict)
            return "classified" if changed else "unchanged"
        item.genres = genres
        item.genreclass_confidence = prediction.confidence
        item.genreclass_model = model_id
        if write and changed:
            reason = self._write_genres(item)
            if reason:
                self._progress.clear()
                self._log.error("{}: cannot write tags ({}); it would be {}", item.filepath, reason, verdict)
                item.load()  # the database keeps its old values, so a rerun retries this track
                return "failed"
        item.store()
        self._track_line("{}: {}", item.filepath, verdict)
        return "classified" if changed else "unchanged"

    def _track_line(self, fmt: str, *args) -> None:
        """A per-track line: shown as it happens when output is a log, behind -v under the bar."""
        (self._log.debug if self._progress.on_terminal else self._log.info)(fmt, *args)

    @staticmethod
    def _write_genres(item: Item) -> str | None:
        """Write only the genre tag into the file; returns why it could not be written, else None.

        `Item.write` would rewrite every media field from the database: beets' normalised
        values and empty defaults (BPM 0, disc 0/0, ...) would replace what the file holds. This
        is `Item.write` restricted to ``genres``, with the same ``write``/``after_write`` events
        for other plugins.
        """
        tags = {"genres": list(item.genres)}
        try:
            plugins.send("write", item=item, path=item.path, tags=tags)
            mediafile = MediaFile(syspath(item.path), id3v23=beets_config["id3v23"].get(bool))
            mediafile.update(tags)
            mediafile.save()
        except (UnreadableFileError, OSError) as exc:
            return str(exc).replace(f": {item.filepath!r}", "").replace(f": '{item.filepath}'", "")
        item.mtime = item.current_mtime()
        plugins.send("after_write", item=item, path=item.path)
        return None

    def _report(self, summary: Counter, pretend: bool, progress: _Progress) -> None:
        keys = ("classified", "unchanged", "uncertain", "skipped", "failed")
        line = ", ".join(f"{summary[k]} {k}" for k in keys)
        done = sum(summary[k] for k in keys if k != "skipped")
        elapsed = time.monotonic() - progress.started
        timing = f" in {elapsed:.1f} s ({progress.rate(done):.1f} tracks/s)" if done else ""
        self._log.info("{}{}{}", "pretend: " if pretend else "", line, timing)
