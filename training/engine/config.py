"""`TrainConfig`: the one recipe schema, every setting of a training run and the one place of their defaults.

Every way of training a network reads it: a CNN/CRNN from scratch, musicnn's back end (or mid-end)
fine-tuned on cached backbone features, torch retraining on a library. ``arch`` names an entry of
`training.models.registry` (what the network reads and how it is built); the front end is part of
the recipe (``frontend``). A run's settings come from three layers, each overriding the one before: the defaults below,
a recipe file (``recipes/*.json``, the same keys; see `TrainConfig.read`), and the command
line (`TrainConfig.with_overrides`). The resolved config is saved beside the run as
``config.json``, itself a recipe. What the data decides (mel bands and frames from the front
end, the class count from the labels) is not a setting: the architecture's builder derives it.
No torch here, so the command line can read and check a recipe before importing it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genre_model import FrontendConfig
from genre_model.frontend import musicnn_frontend
from training.errors import ConfigError
from training.models.registry import ARCHITECTURES, Architecture

# Settings that say where a run executes, not what it computes: a run may resume elsewhere.
ENVIRONMENT_KEYS = ("device", "threads")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclasses.dataclass
class AugmentConfig:
    """Augmentation of log-mel windows (architectures whose inputs are ``log-mel`` only; cached
    backbone features take `TrainConfig.feature_noise` instead).

    gain_db: +/- range of a random level change. tilt_db: +/- range of a linear tilt across
    bands (dB from lowest to highest band). freq_masks/time_masks: SpecAugment mask counts, each
    up to max_freq_mask bands / max_time_mask frames wide. mixup_alpha: Beta(a, a) mixing, 0 = off."""

    gain_db: float = 6.0
    tilt_db: float = 6.0
    freq_masks: int = 2
    max_freq_mask: int = 8
    time_masks: int = 2
    max_time_mask: int = 12
    mixup_alpha: float = 0.3


@dataclasses.dataclass
class TrainConfig:
    """Everything that decides a training run.

    arch: an entry of `training.models.registry.ARCHITECTURES`: "cnn", "crnn" (`training.models.cnn`),
        "musicnn-backend", "musicnn-midend" (`training.models.musicnn.heads`).
    frontend: `genre_model.FrontendConfig` fields over the architecture's front end (e.g.
        ``{"n_mels": 96}``); an architecture on a pretrained backbone keeps the backbone's.
    channels: output channels of each conv block (CNN/CRNN); dropout: before the output layer (and,
        for the musicnn heads, before their dense layer); gru_hidden: GRU state size per direction (CRNN).
    epochs: fixed length of the run (early stopping may end it sooner, see `patience`).
    windows_per_track: training windows drawn per training track and epoch: an epoch is
        ``n_tracks * windows_per_track // batch_size`` steps.
    class_balance: 1 = sample every label equally often, 0 = as the data has them, between:
        counts ** (1 - class_balance) (see `TrackWindows.balanced_indices`).
    patience: epochs without a better validation track accuracy before stopping (0 = never).
    warmup_epochs: linear learning-rate warm-up before the cosine decay.
    keep_best: return the epoch of best validation track accuracy (else the last epoch, as
        cross-validation must, since its validation fold is its test set).
    eval_windows: windows per validation track, placed as inference places them.
    backbone_lr_scale: learning rate of the pretrained or inherited layers relative to `lr` (the
        front end and conv blocks of a CNN/CRNN, musicnn's back end), below 1 when fine-tuning: the
        pretrained features move slowly while the new output layer learns.
    midend_lr_scale: musicnn's mid-end relative to `lr` ("musicnn-midend").
    labels: the vocabulary, in output order (names as the data spells them up to case and
        punctuation); empty: every label with at least `min_tracks` tracks. A track that may carry
        several labels (`Track.genres`) keeps those in the vocabulary, and is left out when none is.
    init_from_tags: musicnn heads: each label's output row starts from musicnn's own tag layer
        (the mean of the rows of the MSD tags that name it, `training/models/musicnn/genre_tags.yaml`),
        so training starts from what the pretrained tagger knows instead of a random layer.
    tag_prior_weight: "musicnn-backend": weight w of musicnn's own tag output, untouched, mixed into
        the learnt head's probabilities at inference, ``(1 - w) p_head + w p_tags`` (0: off; labels
        no MSD tag names get nothing from it). Training learns the head alone.
    feature_noise: std of Gaussian noise on the normalised backbone features while training (musicnn
        heads), their light augmentation. crop_frames: "musicnn-midend": each batch sees a random run
        of this many of the 187 front-end frames (0: all), a time shift its global pooling allows.
    valid_fraction: share of the tracks held out (as whole groups) when the data has no split
        of its own; 0 trains on everything. min_tracks: fewest tracks a label may have.
    seed: seeds Python, numpy and torch. device: "auto", "cpu", "cuda" or "cuda:N".
    threads: torch's CPU threads (0: torch's choice). name: the model's name in its file.
    distill_weight: knowledge distillation: a training window's target is (1 - w) x its label +
        w x the teacher's probabilities for its track (the mean over the track's windows); 0: off.
    teacher: the teacher model file (.onnx, same labels) `genreclass-train fit` runs over the
        training tracks when distill_weight > 0 (cross-validation may supply per-fold targets).
    """

    arch: str = "cnn"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.3
    gru_hidden: int = 64
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    windows_per_track: int = 6
    class_balance: float = 1.0
    label_smoothing: float = 0.05
    patience: int = 8
    keep_best: bool = True
    eval_windows: int = 8
    backbone_lr_scale: float = 1.0
    valid_fraction: float = 0.2
    min_tracks: int = 5
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    name: str = "genreclass"
    distill_weight: float = 0.0
    teacher: str = ""
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    frontend: dict[str, Any] = dataclasses.field(default_factory=dict)
    labels: tuple[str, ...] = ()
    init_from_tags: bool = False
    tag_prior_weight: float = 0.0
    feature_noise: float = 0.0
    midend_lr_scale: float = 0.03
    crop_frames: int = 0

    def __post_init__(self) -> None:
        self.channels, self.labels = tuple(self.channels), tuple(self.labels)
        checks = [
            (self.arch in ARCHITECTURES, f"arch must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}"),
            (bool(self.channels) and min(self.channels) >= 1, "channels must be one or more positive counts"),
            (self.epochs >= 1 and self.batch_size >= 1 and self.windows_per_track >= 1, "epochs, batch_size and windows_per_track must be >= 1"),
            (0 <= self.class_balance <= 1, f"class_balance must be in [0, 1], got {self.class_balance}"),
            (0 <= self.valid_fraction <= 0.5, f"valid_fraction must be in [0, 0.5], got {self.valid_fraction}"),
            (0 <= self.label_smoothing < 1 and 0 <= self.dropout < 1, "label_smoothing and dropout must be in [0, 1)"),
            (self.min_tracks >= 1 and self.eval_windows >= 1, "min_tracks and eval_windows must be >= 1"),
            (0 <= self.distill_weight <= 1, f"distill_weight must be in [0, 1], got {self.distill_weight}"),
            (bool(_DEVICE.fullmatch(self.device)), f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
            (self.feature_noise >= 0 and self.crop_frames >= 0, "feature_noise and crop_frames must be >= 0"),
            (not self.init_from_tags or self.arch.startswith("musicnn"), "init_from_tags is for the musicnn heads"),
            (0 <= self.tag_prior_weight < 1, f"tag_prior_weight must be in [0, 1), got {self.tag_prior_weight}"),
            (not self.tag_prior_weight or self.arch == "musicnn-backend", "tag_prior_weight is for musicnn-backend"),
            (len(set(self.labels)) == len(self.labels), f"labels repeat a name: {self.labels}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.frontend_config()  # a bad front end fails with the recipe, not after the features

    @property
    def architecture(self) -> Architecture:
        """The registry entry of `arch`."""
        return ARCHITECTURES[self.arch]

    def frontend_config(self) -> FrontendConfig:
        """The front end of this run: the architecture's, with the recipe's ``frontend`` settings over it."""
        if self.architecture.frontend == "musicnn":
            if self.frontend:
                raise ConfigError(f"arch {self.arch} reads MSD_musicnn's front end; frontend settings cannot change it")
            return musicnn_frontend()
        known = {f.name for f in dataclasses.fields(FrontendConfig)}
        unknown = sorted(set(self.frontend) - known)
        if unknown:
            raise ConfigError(f"unknown frontend settings {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return FrontendConfig(**self.frontend)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"frontend: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """A config from a recipe's keys; a missing key takes its default, an unknown or ill-typed one
        raises `ConfigError` naming it (a typo must not fall back to a default)."""
        return _build(cls, data, source)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a recipe file: a JSON object of `TrainConfig` keys, and an optional ``comment``
        (and ``run``, which a run's saved ``config.json`` adds: its world size and backend)."""
        data = read_recipe_file(path)
        data.pop("run", None)  # how a saved run executed (world size, backend): not a setting
        return cls.from_dict(data, str(path))

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "command line") -> TrainConfig:
        """A copy with `overrides` applied: {key: value}, nested keys dotted (``augment.mixup_alpha``)."""
        data = self.to_dict()
        for key, value in overrides.items():
            *parents, leaf = key.split(".")
            node = data
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"{source}: unknown setting {key!r}")
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"{source}: unknown setting {key!r}")
            node[leaf] = value
        return TrainConfig.from_dict(data, source)

    def differences(self, other: TrainConfig) -> list[str]:
        """Keys (dotted) whose values differ from `other`'s, leaving out `ENVIRONMENT_KEYS`."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        return sorted(
            k for k in mine.keys() | theirs.keys() if k not in ENVIRONMENT_KEYS and mine.get(k) != theirs.get(k)
        )


def read_recipe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A recipe file's settings: its JSON object without the ``comment``. Raises `ConfigError`
    for a file that cannot be read or is not a JSON object (one line, never a traceback)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the recipe {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a JSON object of settings")
    data.pop("comment", None)
    return data


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` of ``--set``: the value read as JSON (``3``, ``0.5``, ``true``, ``[8, 16]``),
    else taken as a string (``arch=crnn``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set takes key=value, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _build(cls: type, data: Mapping[str, Any], source: str, prefix: str = "") -> Any:
    """`cls(**data)` with each value checked against its field's type (ints pass as floats, lists as tuples)."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{source}: unknown settings {', '.join(prefix + k for k in unknown)}")
    values = {}
    for key, value in data.items():
        hint, name = hints[key], prefix + key
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {name} must be an object of settings, got {value!r}")
            values[key] = _build(hint, value, source, f"{name}.")
            continue
        values[key] = _checked(value, hint, name, source)
    return cls(**values)


def _checked(value: Any, hint: Any, name: str, source: str) -> Any:
    wrong = ConfigError(f"{source}: {name} must be {getattr(hint, '__name__', hint)}, got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise wrong
    elif typing.get_origin(hint) is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {name} must be an object of settings, got {value!r}")
        value = dict(value)
    elif typing.get_origin(hint) is tuple:
        element = typing.get_args(hint)[0]
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, element) and not isinstance(v, bool) for v in value)
        if not ok:
            what = "whole numbers" if element is int else "strings"
            raise ConfigError(f"{source}: {name} must be a list of {what}, got {value!r}")
        value = tuple(value)
    return value
