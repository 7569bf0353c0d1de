"""Typed errors of the inference runtime.

`AudioDecodeError` concerns one file: callers log it, count it and go on.
`ModelError` concerns the model file: nothing can be classified, so callers stop.
"""

from __future__ import annotations

import os


class GenreModelError(Exception):
    """Base class of every error raised by `genre_model`."""


class AudioDecodeError(GenreModelError):
    """A file could not be turned into analysis windows.

    `path` names the file and `reason` says why in words, so one log line is enough to act on
    it. `detail`: what the decoding library itself said ("libsndfile: Unspecified internal
    error."; the codec's own messages), for a debug log; empty when the reason says it all.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str = "") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Rebuilt from (path, reason, detail) when it crosses from a worker process to the parent.
        return (type(self), (self.path, self.reason, self.detail))


class ModelError(GenreModelError):
    """The model file is missing, corrupt, or does not follow the genreclass contract."""
