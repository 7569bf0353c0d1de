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

from genre_model import Classifier, DecoderPool, GenreModelError, Outcome, classify_files

from .progress import Progress, stop_requests
from .settings import Settings

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


def summary_line(summary: Counter, unit: str = "track") -> str:
    """'3 classified, 0 unchanged, ...' with the run's timing when it has one."""
    line = ", ".join(f"{summary[k]} {k}" for k in OUTCOMES)
    if summary["seconds"] and summary["decoded"]:
        line += f" in {summary['seconds']:.1f} s ({summary['decoded'] / summary['seconds']:.1f} {unit}s/s)"
    return line


class Tagger:
    """Classifies items with one classifier and one decoder pool, and sets their genres.

    log: the plugin's logger. pool: decoder processes kept across calls (one import, many tasks).
    """

    def __init__(self, classifier: Classifier, pool: DecoderPool, settings: Settings, log) -> None:
        self.classifier, self.pool, self.settings, self.log = classifier, pool, settings, log
        self.model_id = classifier.info.model_id
        self.progress = Progress(0, log)
        self.summary: Counter = Counter()  # over every `run`: one import is many runs, one per task

    def run(
        self,
        items: Iterable[Item],
        force: bool,
        pretend: bool,
        write: Callable[[Item], str | None] | None,
        show_skipped: bool,
        show_progress: bool = True,
    ) -> None:
        """Classify `items` and set their fields, adding the outcomes to `summary`.

        write: writes an item's genre tag, returning why it could not (None: tags are left to
        the caller). show_skipped: print each skipped track with its reason, not just count it.
        show_progress: a bar on a terminal (not during an import, whose prompts it would garble).
        """
        summary = self.summary
        todo: list[Item] = []
        for item in items:
            reason = None if force else skip_reason(item, self.model_id, self.settings.min_confidence)
            if reason is None:
                todo.append(item)
                continue
            summary["skipped"] += 1
            if show_skipped:
                ui.print_(f"{label(item)}\n  skipped: {reason}")
            else:
                self.log.debug("skipping {}: {}", item.filepath, reason)
        progress = self.progress = Progress(len(todo) if show_progress else 0, self.log)
        paths = [item.filepath for item in todo]
        try:
            with stop_requests() as stop:
                outcomes = classify_files(self.classifier, paths, self.settings.max_windows, pool=self.pool)
                for done, outcome in enumerate(outcomes, 1):
                    summary[self._apply(todo[outcome.index], outcome, force, pretend, write)] += 1
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
            summary["decoded"] += len(todo)
            summary["seconds"] += time.monotonic() - progress.started

    def _print(self, text: str) -> None:
        self.progress.clear()  # the bar is redrawn on the next update
        ui.print_(text)

    def _apply(
        self, item: Item, outcome: Outcome, force: bool, pretend: bool, write: Callable[[Item], str | None] | None
    ) -> str:
        """Set one item's fields from its outcome and show it; returns its summary key. Each
        failure is logged here, once, with the path and the reason."""
        if outcome.error is not None:
            self.progress.clear()
            self.log.error("{}: {}", item.filepath, outcome.error.reason)
            return "failed"
        prediction = outcome.prediction
        genres = prediction.selected(self.settings.count, self.settings.min_confidence)
        ranked = ", ".join(f"{label} {p:.2f}" for label, p in prediction.genres[: max(3, self.settings.count)])
        if not genres:
            self._print(
                f"{label(item)}\n  uncertain: no genre reaches min_confidence {self.settings.min_confidence:g} ({ranked})"
            )
            if not pretend and not item.get("genres"):
                # Recorded so that reruns skip it, unless forced or the threshold is lowered.
                item.genreclass_confidence = prediction.confidence
                item.genreclass_model = self.model_id
                item.store()
            return "uncertain"
        changed = list(item.get("genres") or []) != genres
        item.genres = genres
        self.progress.clear()
        ui.print_(label(item))
        ui.show_model_changes(item, fields=["genres"], print_obj=False)
        ui.print_(f"  {'would be ' if pretend else ''}{'; '.join(genres)} ({ranked})")
        if pretend:
            item.load()  # pretend changes nothing, not even this object
            return "classified" if changed else "unchanged"
        item.genreclass_confidence = prediction.confidence
        item.genreclass_model = self.model_id
        if write is not None and (changed or force):  # forced: the file may lack a tag the database has
            reason = write(item)
            if reason:
                self.log.error("{}: cannot write tags ({}); it would be {}", item.filepath, reason, "; ".join(genres))
                item.load()  # the database keeps its old values, so a rerun retries this track
                return "failed"
        item.store()
        return "classified" if changed else "unchanged"
