"""The model file contract: one `.onnx` whose metadata describes it completely.

`metadata_props` holds a ``genreclass`` entry, a JSON object with:
  format: 1 (this contract's version)
  name, version: the model's identity; ``f"{name}@{version}"`` is stored on classified tracks
  labels: genre names in the order of the output's last axis
  frontend: `FrontendConfig` fields
  training: summary of the data the model was trained on (free-form object)
  metrics: evaluation results (free-form object)
The graph takes ``input`` (batch, n_mels, n_frames) float32 log-mel dB and returns, as its
first output, probabilities (batch, len(labels)) that sum to one. Further outputs may follow:
``embedding`` (batch, D) float32, the features the output layer reads, on which a personal
head can be trained without torch (`training.models.personal_head`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from genre_model.errors import ModelError
from genre_model.frontend import FrontendConfig

METADATA_KEY = "genreclass"
FORMAT_VERSION = 1


def version_stamp(seconds: float | None = None) -> str:
    """A new model's `ModelInfo.version`: the local time it was made (`seconds` since the epoch,
    default now) as ``YYYYmmdd-HHMMSS``."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(seconds))


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything the runtime needs to know about a model, read from its file."""

    name: str
    version: str
    labels: tuple[str, ...]
    frontend: FrontendConfig
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def model_id(self) -> str:
        """Identity stored on classified tracks, e.g. ``genreclass-default@1.0``."""
        return f"{self.name}@{self.version}"

    def to_json(self) -> str:
        data = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "frontend": self.frontend.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> ModelInfo:
        """Parse and validate the ``genreclass`` metadata entry; raises `ModelError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: '{METADATA_KEY}' metadata is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ModelError(f"{source}: '{METADATA_KEY}' metadata must be a JSON object")
        if data.get("format") != FORMAT_VERSION:
            raise ModelError(
                f"{source}: model format {data.get('format')!r} is not supported (this version reads {FORMAT_VERSION})"
            )
        labels = data.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise ModelError(f"{source}: 'labels' must be a non-empty list of genre names")
        if len(set(labels)) != len(labels):
            raise ModelError(f"{source}: 'labels' contains duplicates")
        for key in ("name", "version"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ModelError(f"{source}: '{key}' must be a non-empty string")
        try:
            frontend = FrontendConfig.from_dict(data.get("frontend") or {})
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: invalid front-end parameters ({exc})") from None
        return cls(
            name=data["name"],
            version=data["version"],
            labels=tuple(labels),
            frontend=frontend,
            training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}),
        )
