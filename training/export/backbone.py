"""Read a trained network's front end and convolutional blocks back out of an exported `.onnx`.

Fine-tuning starts from these weights with a new head for the new vocabulary. `export_onnx`
keeps batch norms as separate nodes (no constant folding), so every trained tensor is in the
file: Conv weights, BatchNormalization scale, bias, running mean and variance. Nodes are
matched to torch modules by position (both follow the forward pass), not by initialiser
name, which the exporter may rename or deduplicate.
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
from training.models.cnn import BACKBONE_PREFIXES, ModelConfig, build_model

__all__ = ["BackboneError", "read_backbone", "transplant_head"]


def _backbone_modules(model: nn.Module) -> tuple[list[nn.Conv2d], list[nn.modules.batchnorm._BatchNorm]]:
    """Conv and batch-norm modules of the front end and conv blocks, in forward order."""
    parts = [model.frontend, model.blocks]
    convs = [m for part in parts for m in part.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for part in parts for m in part.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return convs, norms


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
    convs, norms = _backbone_modules(model)
    weights = {t.name: t for t in proto.graph.initializer}
    conv_nodes = [n for n in proto.graph.node if n.op_type == "Conv"]
    norm_nodes = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if len(conv_nodes) != len(convs) or len(norm_nodes) != len(norms):
        raise BackboneError(
            f"{path}: {len(conv_nodes)} convolutions and {len(norm_nodes)} batch norms in the file, "
            f"{config.arch} {config.channels} has {len(convs)} and {len(norms)} "
            "(files exported with folded batch norms cannot be fine-tuned)"
        )

    # The exporter stores equal tensors once and feeds the copies through Identity nodes.
    aliases = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Identity"}

    def tensor(name: str, like: torch.Tensor) -> torch.Tensor:
        while name not in weights and name in aliases:
            name = aliases[name]
        if name not in weights:
            raise BackboneError(f"{path}: weight {name!r} is computed in the graph, not stored")
        value = torch.from_numpy(numpy_helper.to_array(weights[name]).copy())
        if value.shape != like.shape:
            raise BackboneError(f"{path}: weight {name!r} has shape {tuple(value.shape)}, expected {tuple(like.shape)}")
        return value

    for module, node in zip(convs, conv_nodes, strict=True):
        module.weight.data = tensor(node.input[1], module.weight)
    for module, node in zip(norms, norm_nodes, strict=True):
        # BatchNormalization inputs: X, scale, B, input_mean, input_var
        for attr, name in zip(("weight", "bias", "running_mean", "running_var"), node.input[1:5], strict=True):
            getattr(module, attr).data = tensor(name, getattr(module, attr))
    state = {
        k: v
        for k, v in model.state_dict().items()
        if k.startswith(BACKBONE_PREFIXES) and not k.endswith("num_batches_tracked")
    }
    head = model.head[-1]
    gemm = [n for n in proto.graph.node if n.op_type == "Gemm"][-1]  # the output layer: Gemm(X, W, B)
    if _trans_b(gemm):  # W stored as (n_labels, features), as torch holds it
        state["head.1.weight"] = tensor(gemm.input[1], head.weight)
    else:
        state["head.1.weight"] = tensor(gemm.input[1], head.weight.T).T.contiguous()
    state["head.1.bias"] = tensor(gemm.input[2], head.bias)
    return info, config, state


def _trans_b(node: onnx.NodeProto) -> bool:
    return any(a.name == "transB" and a.i == 1 for a in node.attribute)


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
