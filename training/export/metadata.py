"""The ``genreclass`` metadata entry of an `.onnx` file, written and updated with the `onnx` package.

Kept apart from `training.export.onnx_export` so that the paths that need no torch (a personal head on a
model's embedding, metrics written after the held-out check) can use it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import onnx

from genre_model import ModelInfo
from genre_model.model_file import METADATA_KEY
from training.errors import ConfigError


def set_info(proto: onnx.ModelProto, info: ModelInfo) -> None:
    """Replace `proto`'s metadata by `info` (the only entry: ``genreclass``)."""
    onnx.helper.set_model_props(proto, {METADATA_KEY: info.to_json()})
    proto.producer_name = "beets-genreclass"


def read_info(proto: onnx.ModelProto, source: str) -> ModelInfo | None:
    """`proto`'s `ModelInfo`, None when it has no ``genreclass`` entry; `source` names it in errors."""
    meta = {p.key: p.value for p in proto.metadata_props}
    return ModelInfo.from_json(meta[METADATA_KEY], source) if METADATA_KEY in meta else None


def update_metrics(
    path: str | os.PathLike[str], metrics: dict[str, Any], training_fields: dict[str, Any] | None = None
) -> ModelInfo:
    """Replace the `metrics` in an exported model file's metadata, and set `training_fields` in its
    training summary; the graph and weights stay as they are. Returns the file's new `ModelInfo`."""
    proto = onnx.load(str(path))
    info = read_info(proto, str(path))
    if info is None:
        raise ConfigError(f"{path}: no '{METADATA_KEY}' metadata to update")
    info = dataclasses.replace(info, metrics=metrics, training={**info.training, **(training_fields or {})})
    set_info(proto, info)
    onnx.save(proto, str(path))
    return info
