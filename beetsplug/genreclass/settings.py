"""The plugin's settings: their defaults, and one validation of them all before any work.

Every value is read once, with confuse's typed templates, into a frozen `Settings`; a bad
value stops the command (or the import, before its first task) with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os

import confuse
from beets import config as beets_config
from beets import ui

from genre_model import resolve_workers
from genre_model.classifier import BUNDLED_MODELS, DEVICES, VOTES, bundled_model_path

DEFAULTS = {
    "auto": False,
    "model": "",  # "default" or "fast" (bundled), a file, or empty: the installed model, else "default"
    "device": "auto",
    "count": 1,
    # The default model's cross-validated written genre is right 0.92 of the time at 0.6 (0.78 at
    # 0.3), on 43 % of the pool's clips (docs/BENCHMARKS.md, issue 22): a written genre should be
    # right at least 9 times in 10. The rest are "uncertain", shown and marked as such.
    "min_confidence": 0.6,
    # The genre an uncertain track without genres gets (lastgenre's `fallback`); "": none, the
    # track stays without genres, and is still listed and counted as uncertain.
    "fallback": "",
    "force": False,
    # With force: a track's own genres stay and genreclass's are added after them, instead of
    # replacing them (lastgenre's `keep_existing`, which likewise changes what force does).
    "keep_existing": False,
    # 4 windows: the default model's CV accuracy is that of 8 (0.759 vs 0.761) at 1.6x the speed.
    "max_windows": 4,
    "vote": "mean",
    # Windows per onnxruntime call: the default model's activations take ~60 MB a window, and
    # larger batches are no faster on a CPU.
    "batch_size": 8,
    "workers": "auto",
    # "album": one verdict per album, from all its tracks (as lastgenre's default `source: album`);
    # singletons and compilations stay per track. "artist": one verdict per artist, from the
    # run's tracks of that artist. "track": each track its own.
    "source": "album",
    # Model label -> the genre to write instead ("" or null: never write it; the next most
    # probable label takes its place). Checked against the model's labels when it loads.
    "map": {},
}

SOURCES: tuple[str, ...] = ("album", "artist", "track")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings. model: a model file, or None for the installed or bundled one.
    workers: decoder processes ('auto' resolved to the usable cores; 0 = in the beets process)."""

    auto: bool
    model: str | None
    device: str
    count: int
    min_confidence: float
    fallback: str  # "" = none
    force: bool
    keep_existing: bool
    max_windows: int
    vote: str
    batch_size: int
    workers: int
    source: str
    rename: dict[str, str]  # the `map` setting: model label -> genre to write ("" = never)


def genreclass_dir() -> str:
    """``<beets config folder>/genreclass``: trained models and the installed one live here."""
    return os.path.join(beets_config.config_dir(), "genreclass")


def installed_model_path() -> str:
    """Where an installed model (``genreclass-train --install``) replaces the bundled one."""
    return os.path.join(genreclass_dir(), "model.onnx")


def read_settings(config: confuse.ConfigView) -> Settings:
    """Read and check every setting of the plugin's `config` view; raises `ui.UserError`."""
    try:
        settings = Settings(
            auto=config["auto"].get(bool),
            model=_model_path(config["model"]),
            device=config["device"].as_choice(DEVICES),
            count=_at_least(config, "count", 1),
            min_confidence=float(config["min_confidence"].as_number()),
            fallback=_fallback(config["fallback"]),
            force=config["force"].get(bool),
            keep_existing=config["keep_existing"].get(bool),
            max_windows=_at_least(config, "max_windows", 1),
            vote=config["vote"].as_choice(VOTES),
            batch_size=_at_least(config, "batch_size", 1),
            workers=_workers(config["workers"]),
            source=config["source"].as_choice(SOURCES),
            rename=_rename(config["map"]),
        )
    except confuse.ConfigError as exc:
        raise setting_error(exc) from None
    if not 0 <= settings.min_confidence <= 1:
        raise ui.UserError(f"genreclass: 'min_confidence' must be between 0 and 1, got {settings.min_confidence:g}")
    return settings


def setting_error(exc: confuse.ConfigError) -> ui.UserError:
    """A bad value as one error line: confuse names the key 'genreclass.device: ...'; ours quote
    it after one prefix, as the other setting errors do ("genreclass: 'device' must be ...")."""
    key, _, message = str(exc).partition(": ")
    if key.startswith("genreclass.") and message:
        return ui.UserError(f"genreclass: '{key.removeprefix('genreclass.')}' {message}")
    return ui.UserError(f"genreclass: {exc}")


def unknown_keys(config: confuse.ConfigView) -> list[str]:
    """Warnings for keys under ``genreclass:`` that are no setting (a misspelling would otherwise
    be ignored silently), each naming the setting it is closest to, if any."""
    warnings = []
    for key in sorted(set(config.keys()) - set(DEFAULTS)):
        close = difflib.get_close_matches(key, DEFAULTS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        warnings.append(f"'{key}' is no genreclass setting{hint}; it is ignored")
    return warnings


def _at_least(config: confuse.ConfigView, key: str, low: int) -> int:
    value = config[key].get(int)
    if value < low:
        raise ui.UserError(f"genreclass: '{key}' must be at least {low}, got {value}")
    return value


def _workers(view: confuse.ConfigView) -> int:
    value = view.get()
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return resolve_workers(value)
    raise ui.UserError(f"genreclass: 'workers' must be 'auto' or a number >= 0, got {value!r}")


def _fallback(view: confuse.ConfigView) -> str:
    """The `fallback` setting: one genre name, or nothing (empty or null)."""
    value = view.get()
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ui.UserError(f"genreclass: 'fallback' must be one genre name or empty, got {value!r}")
    return str(value).strip()


def _rename(view: confuse.ConfigView) -> dict[str, str]:
    """The `map` setting: a mapping of label -> genre string, null and "" meaning "never write"."""
    value = view.get()
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ui.UserError(f"genreclass: 'map' must be a mapping of model labels to genres, got {value!r}")
    rename = {}
    for label, genre in value.items():
        if genre is not None and not isinstance(genre, str | int | float):
            raise ui.UserError(f"genreclass: 'map': {label} must map to a genre name or nothing, got {genre!r}")
        rename[str(label)] = "" if genre is None else str(genre).strip()
    return rename


def check_rename(rename: dict[str, str], labels: tuple[str, ...]) -> None:
    """Refuse `map` keys that are not labels of the model in use (raises `ui.UserError`)."""
    unknown = sorted(set(rename) - set(labels))
    if unknown:
        raise ui.UserError(
            f"genreclass: 'map' has {'a key' if len(unknown) == 1 else 'keys'} the model does not know: "
            f"{', '.join(unknown)}; its labels are {', '.join(labels)}"
        )


def _model_path(view: confuse.ConfigView) -> str | None:
    """The configured model (a bundled model's name, or a file), else the installed one, else
    None (the bundled default)."""
    if not view.get():
        return installed_model_path() if os.path.exists(installed_model_path()) else None
    if view.get() in BUNDLED_MODELS:
        return str(bundled_model_path(view.get()))
    path = view.as_filename()
    if os.path.isdir(path):
        raise ui.UserError(f"genreclass: 'model' is a folder ({path}); give the path of a .onnx model file")
    if not os.path.exists(path):
        raise ui.UserError(f"genreclass: model file not found: {path}")
    if not os.path.isfile(path):  # a FIFO or a device: opening it could block forever
        raise ui.UserError(f"genreclass: 'model' is not a regular file ({path}); give the path of a .onnx model file")
    return path
