"""Typed errors of training, all under `TrainingError`, that need no torch to raise or to catch.

The plugin catches the base class (turning each into one `UserError` line) without importing
torch, so the head-on-embeddings path of `beet genreclass-train` runs without the torch extra.
The command line turns them into one-line errors too.
"""

from __future__ import annotations


class TrainingError(Exception):
    """Base of every error training raises on purpose: the message says what is wrong."""


class ConfigError(TrainingError, ValueError):
    """A bad setting: an unknown or ill-typed recipe key, a value out of range, an unusable device."""


class ResumeMismatchError(ConfigError):
    """A run to resume was made with other settings (or data) than the ones given now."""


class DatasetError(TrainingError):
    """A dataset cannot be read: wrong path, bad format, or no usable tracks."""


class NotEnoughData(TrainingError):
    """The tracks cannot support a train/held-out split in the asked labels; says what is missing."""


class SplitLeakError(TrainingError):
    """A group or a file's content appears on both sides of a split."""


class BackboneError(TrainingError):
    """The model file cannot seed a new network (no architecture, folded or mismatched weights)."""


class NoEmbeddingError(BackboneError):
    """The base model has no ``embedding`` output, so no head can be trained on its features."""


class ExportError(TrainingError):
    """The written model does not reproduce the model it was made from."""
