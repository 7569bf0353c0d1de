from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.library import BeetsLibrary


@pytest.fixture
def make_library(tmp_path, tiny_model) -> Iterator[Callable[..., BeetsLibrary]]:
    """``make_library(root=tmp_path, model=tiny_model, **genreclass settings)``: a beets set-up,
    closed (beets' global state put back) after the test, the last made first."""
    with contextlib.ExitStack() as stack:

        def make(root: Path | None = None, model: Path | str | None = None, **settings) -> BeetsLibrary:
            return stack.enter_context(
                BeetsLibrary(root or tmp_path, tiny_model if model is None else model, **settings)
            )

        yield make
