"""Export a trained network to the self-describing `.onnx` of `genre_model.model_file`.

The exported graph includes the softmax; its metadata carries labels, front end, training
summary and metrics. A parity check runs the file in onnxruntime against torch on real
windows and refuses the export above `PARITY_TOLERANCE`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from genre_model import Classifier, FrontendConfig, ModelInfo
from training.errors import ExportError
from training.export.metadata import set_info, update_metrics

__all__ = ["ExportError", "PARITY_TOLERANCE", "export_onnx", "update_metrics"]

PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities, torch vs onnxruntime
OPSET = 17


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
    model: torch.nn.Module, info: ModelInfo, out_path: str | os.PathLike[str], parity_windows: np.ndarray
) -> dict[str, Any]:
    """Write `model` with `info` to `out_path` and check parity on `parity_windows`.

    parity_windows: real log-mel windows (n, n_mels, n_frames) to compare outputs on.
    returns: {"max_abs_diff": float, "n_windows": int}. Raises `ExportError` (and removes the
    file) when the difference exceeds `PARITY_TOLERANCE`.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = _WithSoftmax(model.cpu().eval()).eval()
    if hasattr(model, "config"):  # rebuilding the network from the file needs its architecture
        info = dataclasses.replace(info, training={**info.training, "model_config": model.config.to_dict()})
    fe: FrontendConfig = info.frontend
    dummy = torch.zeros(2, fe.n_mels, fe.n_frames)
    tmp = out_path.with_suffix(".tmp.onnx")
    # The TorchScript exporter handles the GRU with a dynamic batch axis in one pass; its
    # deprecation warning is not the user's concern. No constant folding: batch norms stay
    # separate nodes with their own statistics, so `training.export.backbone` can read the trained
    # weights back for fine-tuning (onnxruntime fuses them into the convolutions at load time).
    outputs = ["probabilities", *wrapped.extra_outputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped, (dummy,), str(tmp), input_names=["input"], output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["input", *outputs]}, opset_version=OPSET, dynamo=False,
            do_constant_folding=False,
        )  # fmt: skip
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
        tmp.unlink()
        raise ExportError(f"onnxruntime differs from torch by {diff:.2e} > {PARITY_TOLERANCE:.0e}; export refused")
    os.replace(tmp, out_path)
    return {"max_abs_diff": diff, "n_windows": int(len(parity_windows))}
