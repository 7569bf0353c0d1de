"""The one way a torch network becomes an `.onnx` (`torch_to_onnx`), and the genre models' export.

`export_onnx` writes a trained network of the registry as the self-describing `.onnx` of
`genre_model.model_file`: log-mel windows in (the architecture's `exportable` joins a frozen
backbone to a head), softmax included, metadata with labels, front end, the network's
``model_config``, training summary and metrics. Parameters keep their torch names (prefixed
`PARAMETER_PREFIX`), so `training.export.backbone` reads weights back by name. A parity check runs
the file in onnxruntime against torch on real windows and refuses the export above
`PARITY_TOLERANCE`. The musicnn taggers' plain graphs (`training.export.musicnn`) and the backbone
sessions of the feature cache (`training.features.embeddings`) go through `torch_to_onnx` too.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch

from genre_model import Classifier, FrontendConfig, ModelInfo
from training.atomic import replaced_atomically
from training.errors import ExportError
from training.export.metadata import set_info, update_metrics

__all__ = ["ExportError", "OPSET", "PARITY_TOLERANCE", "export_onnx", "torch_to_onnx", "update_metrics"]

PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities, torch vs onnxruntime
OPSET = 17  # onnxruntime >= 1.12 runs it; every file this project writes uses it
# Exported parameter names are the network's state-dict keys under the softmax wrapper's attribute.
PARAMETER_PREFIX = "net."


def torch_to_onnx(
    module: torch.nn.Module, path: str | os.PathLike[str], example: torch.Tensor, input_name: str,
    output_names: Sequence[str], fold_constants: bool = True,
) -> None:  # fmt: skip
    """Write `module` (eval mode) to `path`: one input `input_name` shaped like `example`, the
    outputs `output_names`, the batch axis of all dynamic, opset `OPSET`.

    fold_constants: False keeps batch norms as separate nodes with their own statistics (so
    weights can be read back for fine-tuning; onnxruntime fuses them at load time anyway).
    """
    # The TorchScript exporter handles the GRU with a dynamic batch axis in one pass; its
    # deprecation and tracer warnings are not the user's concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            module.eval(), (example,), str(path), input_names=[input_name], output_names=list(output_names),
            dynamic_axes={name: {0: "batch"} for name in [input_name, *output_names]}, opset_version=OPSET,
            dynamo=False, do_constant_folding=fold_constants,
        )  # fmt: skip


class _WithSoftmax(torch.nn.Module):
    """Softmax on the network's logits. A network with `extra_outputs` (names) returns
    ``(logits, *extras)``; the extras are exported as further outputs after the probabilities."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.extra_outputs: tuple[str, ...] = tuple(getattr(net, "extra_outputs", ()))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.net(x)
        if self.extra_outputs:
            return (torch.softmax(out[0], dim=1), *out[1:])
        return torch.softmax(out, dim=1)


def export_onnx(
    network: torch.nn.Module, info: ModelInfo, out_path: str | os.PathLike[str], parity_windows: np.ndarray
) -> dict[str, Any]:
    """Write trained `network` (as the training loop built it) with `info` to `out_path` and check
    parity on `parity_windows`.

    parity_windows: real log-mel windows (n, n_mels, n_frames) to compare outputs on.
    returns: {"max_abs_diff": float, "n_windows": int}. Raises `ExportError` (and removes the
    file) when the difference exceeds `PARITY_TOLERANCE`.
    """
    from training.models.registry import architecture

    model_config = network.model_config()  # rebuilding the network from the file needs its architecture
    info = dataclasses.replace(info, training={**info.training, "model_config": model_config})
    model = architecture(model_config["arch"]).function("exportable")(network.cpu().eval())
    wrapped = _WithSoftmax(model).eval()
    fe: FrontendConfig = info.frontend
    outputs = ["probabilities", *wrapped.extra_outputs]
    with replaced_atomically(out_path) as tmp:
        # No constant folding: `training.export.backbone` reads the trained batch norms back by name.
        torch_to_onnx(wrapped, tmp, torch.zeros(2, fe.n_mels, fe.n_frames), "input", outputs, fold_constants=False)
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        set_info(proto, info)
        onnx.save(proto, str(tmp))
        with torch.no_grad():
            expected = wrapped(torch.from_numpy(np.ascontiguousarray(parity_windows, dtype=np.float32)))
            expected = (expected[0] if wrapped.extra_outputs else expected).numpy()
        got = Classifier(tmp, device="cpu").window_probabilities(parity_windows)
        diff = float(np.abs(expected - got).max())
        if diff > PARITY_TOLERANCE:
            raise ExportError(f"onnxruntime differs from torch by {diff:.2e} > {PARITY_TOLERANCE:.0e}; export refused")
    return {"max_abs_diff": diff, "n_windows": int(len(parity_windows))}
