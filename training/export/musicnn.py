"""ONNX export of the musicnn ports: patches in, tag probabilities and embedding out.

Plain graphs for experiments and speed probes; unlike `training.export.onnx_export` they carry no project
metadata (the musicnn taggers are not genre models of this project's vocabulary).
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.export.onnx_export import torch_to_onnx
from training.models.musicnn.constants import N_MELS, PATCH_FRAMES
from training.models.musicnn.network import load_pretrained

INPUT_NAME = "patches"
OUTPUT_NAMES = ("probabilities", "embedding")


class _Tagger(torch.nn.Module):
    # ONNX graphs return tensors, not NamedTuples.
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x)
        return out.probabilities, out.embedding


def tagger_for_export(net: torch.nn.Module) -> torch.nn.Module:
    """`net` (a musicnn port) wrapped to return (probabilities (batch, 50), embedding (batch, D))."""
    return _Tagger(net).eval()


def export_musicnn_onnx(name: str, path: Path) -> Path:
    """Write pretrained network `name` to `path` as ONNX (`training.export.onnx_export.OPSET`, dynamic batch axis).

    Input "patches": (batch, 96 bands, 187 frames) float32 musicnn log-mel patches.
    Outputs "probabilities" (batch, 50) and "embedding" (batch, 200 for msd_musicnn, 256 for msd_vgg).
    """
    torch_to_onnx(tagger_for_export(load_pretrained(name)), path, torch.zeros(2, N_MELS, PATCH_FRAMES), INPUT_NAME,
                  OUTPUT_NAMES)  # fmt: skip
    return path
