"""Read a trained network's front end, convolutional blocks and output layer back out of an exported `.onnx`.

Fine-tuning starts from these weights with a new head for the new vocabulary. `export_onnx`
keeps batch norms as separate nodes (no constant folding) and the network's parameter names
(`PARAMETER_PREFIX` + state-dict key), so every trained tensor is read back by its name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from genre_model import ModelInfo
from genre_model.model_file import METADATA_KEY
from training.data.genres import shared_label_indices
from training.errors import BackboneError
from training.export.metadata import read_info
from training.export.onnx_export import PARAMETER_PREFIX
from training.models.cnn import BACKBONE_PREFIXES, ModelConfig, build_model

__all__ = ["BackboneError", "read_backbone", "transplant_head"]


def read_backbone(path: str | os.PathLike[str]) -> tuple[ModelInfo, ModelConfig, dict[str, torch.Tensor]]:
    """The model file's info, its architecture and a state dict of its front end, conv blocks and head.

    The state dict's keys are those of `build_model(config)`: ``frontend.*``, ``blocks.*`` and
    the output layer ``head.1.weight`` (n_labels, features) and ``head.1.bias`` (n_labels,) in
    the order of ``info.labels``, for a new vocabulary to take over the rows of the genres it
    shares (`transplant_head`). A CRNN's GRU is not included. Raises `BackboneError` with the
    reason when the file cannot be used.
    """
    proto = onnx.load(str(path))
    info = read_info(proto, str(path))
    if info is None:
        raise BackboneError(f"{path}: not a genreclass model (no '{METADATA_KEY}' metadata)")
    if "model_config" not in info.training:
        raise BackboneError(f"{path}: its metadata has no 'model_config'; re-export it with this version's training")
    config = ModelConfig(**info.training["model_config"])
    model = build_model(config)
    weights = {t.name: t for t in proto.graph.initializer}
    # The exporter stores equal tensors once and feeds the copies through Identity nodes.
    aliases = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Identity"}

    def tensor(key: str, like: torch.Tensor) -> torch.Tensor:
        name = PARAMETER_PREFIX + key
        while name not in weights and name in aliases:
            name = aliases[name]
        if name not in weights:
            raise BackboneError(
                f"{path}: no weight named {PARAMETER_PREFIX + key!r} (exported with folded batch norms or renamed "
                "parameters?); it cannot be fine-tuned"
            )
        value = torch.from_numpy(numpy_helper.to_array(weights[name]).copy())
        if value.shape != like.shape:
            raise BackboneError(f"{path}: weight {name!r} has shape {tuple(value.shape)}, expected {tuple(like.shape)}")
        return value

    # The front end and conv blocks, and the output layer (a CRNN's GRU is re-laid by the exporter: not read).
    state = {
        key: tensor(key, like)
        for key, like in model.state_dict().items()
        if key.startswith((*BACKBONE_PREFIXES, "head.")) and not key.endswith("num_batches_tracked")
    }
    return info, config, state


def transplant_head(
    state: dict[str, torch.Tensor], old_labels: Sequence[str], new_labels: Sequence[str], seed: int = 0
) -> dict[str, torch.Tensor]:
    """`state` with its head re-shaped for `new_labels`: the rows of genres both vocabularies
    have (equal up to case and punctuation) are kept, the others start as a fresh layer would."""
    weight, bias = state["head.1.weight"], state["head.1.bias"]
    torch.manual_seed(seed)
    fresh = nn.Linear(weight.shape[1], len(new_labels))
    new_weight, new_bias = fresh.weight.detach().clone(), fresh.bias.detach().clone()
    for i, j in shared_label_indices(new_labels, old_labels).items():
        new_weight[i], new_bias[i] = weight[j], bias[j]
    return {**state, "head.1.weight": new_weight, "head.1.bias": new_bias}
