"""Typed errors of model building that need no torch to raise or to catch.

The plugin catches them (turning each into one `UserError` line) without importing torch, so
the head-on-embeddings path of `beet genreclass-train` runs without the torch extra.
"""

from __future__ import annotations


class BackboneError(Exception):
    """The model file cannot seed a new network (no architecture, folded or mismatched weights)."""


class NoEmbeddingError(BackboneError):
    """The base model has no ``embedding`` output, so no head can be trained on its features."""


class ExportError(Exception):
    """The written model does not reproduce the model it was made from."""
