"""The architectures a recipe may name (`TrainConfig.arch`): what each trains on and how it is built.

One entry per kind of network; a new backbone or head is one more entry here and a builder in
its own module. Entries name their builders as ``"module:function"`` strings, imported when used,
so the recipe schema (`training.engine.config`) reads this table without importing torch.

inputs: what the trainable network reads from each window, and so what the feature caches hold:
    ``"log-mel"``: the window's log-mel itself (`genre_model.log_mel` under the architecture's
        front end), cropped at random offsets from each track's cached spectrogram;
    ``"musicnn-pooled"``: MSD_musicnn's pooled mid-end features (n, 1506) of every whole window,
        the frozen front end and mid-end run once (`training.features.embeddings`);
    ``"musicnn-frontend"``: MSD_musicnn's front-end output (n, 561, 187) of every whole window.
frontend: the front end the architecture needs, "default" (`genre_model.FrontendConfig()`, which
    a recipe's ``frontend`` settings may change) or "musicnn" (`genre_model.frontend.musicnn_frontend`,
    fixed: the pretrained filters were learnt on it).
build: ``(config: TrainConfig, labels) -> nn.Module``, the network the loop trains for `labels`; its forward
    takes a batch of `inputs` and returns logits (batch, n_labels), or (logits, *extra outputs).
rebuild: ``(model_config: dict) -> nn.Module``, the same network from what a checkpoint stores
    (the network's ``model_config()``), without a `TrainConfig`.
exportable: ``(network) -> nn.Module`` taking log-mel windows: the network itself, or the frozen
    backbone and the network joined.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str
    inputs: str
    frontend: str
    build: str
    rebuild: str
    exportable: str
    description: str

    def function(self, role: str) -> Callable[..., Any]:
        """The builder named by field `role` ("build", "rebuild" or "exportable"), imported now."""
        module, _, name = getattr(self, role).partition(":")
        return getattr(importlib.import_module(module), name)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "cnn", "log-mel", "default", "training.models.cnn:build_from_config",
            "training.models.cnn:rebuild", "training.models.cnn:as_exportable",
            "conv blocks, mean+max pooling, a dense layer; trained from scratch (the fast model)",
        ),
        Architecture(
            "crnn", "log-mel", "default", "training.models.cnn:build_from_config",
            "training.models.cnn:rebuild", "training.models.cnn:as_exportable",
            "conv blocks, then a bidirectional GRU over time",
        ),
        Architecture(
            "musicnn-backend", "musicnn-pooled", "musicnn", "training.models.musicnn.heads:build_backend",
            "training.models.musicnn.heads:rebuild", "training.models.musicnn.heads:with_backbone",
            "MSD_musicnn frozen to its mid-end; its back end fine-tuned from the pretrained weights, a new "
            "output layer (the default model)",
        ),
        Architecture(
            "musicnn-midend", "musicnn-frontend", "musicnn", "training.models.musicnn.heads:build_midend",
            "training.models.musicnn.heads:rebuild", "training.models.musicnn.heads:with_backbone",
            "MSD_musicnn frozen to its front end; mid-end and back end fine-tuned, a new output layer",
        ),
    )
}  # fmt: skip


def architecture(name: str) -> Architecture:
    """The registry entry `name`; `KeyError` names the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown arch {name!r}; known: {', '.join(ARCHITECTURES)}") from None
