"""The `model` setting names something that is not a model file: one clear line, no hang."""

from __future__ import annotations

import os

import confuse
import pytest
from beets import ui

from beetsplug.genreclass.settings import _model_path


def _view(value: str) -> confuse.ConfigView:
    config = confuse.Configuration("genreclass-test", read=False)
    config.set({"model": value})
    return config["model"]


def test_a_fifo_as_the_model_is_refused_as_not_a_regular_file(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ui.UserError, match=r"'model' is not a regular file"):
        _model_path(_view(str(fifo)))
    with pytest.raises(ui.UserError, match="model file not found"):
        _model_path(_view(str(tmp_path / "absent.onnx")))
