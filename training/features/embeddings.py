"""The pretrained backbone's pooled features on every window of each track, cached per file.

A frozen backbone gives the same features on every epoch, so they are computed once: for each
track, its windows under one placement (`genre_model.window_starts`: every whole window with
``max_windows=None``, or the plugin's placement), through the backbone in onnxruntime, one of
`OUTPUTS` (pooled mid-end features, front-end outputs, MSD_vgg's embedding), one file per track.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from genre_model.classifier import quiet_onnxruntime
from genre_model.frontend import musicnn_frontend
from training.export.onnx_export import torch_to_onnx
from training.features.cache import cached_window_outputs, frontend_digest
from training.models.musicnn.constants import N_MELS, PATCH_FRAMES
from training.models.musicnn.network import Musicnn, MusicnnVgg

# Windows per backbone call: its activations take ~60 MB a window (4 GB at 64), and larger
# batches are no faster on a CPU (the plugin's batch_size measurement, docs/BENCHMARKS.md).
BATCH = 8


class Output(NamedTuple):
    """One cacheable output of a pretrained backbone."""

    folder: str  # cache folder prefix
    compute: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]  # (backbone, (B, 96, 187)) -> (B, ...)
    dtype: type[np.floating]  # as stored


OUTPUTS: dict[str, Output] = {
    # MSD_musicnn's pooled mid-end features, (n, 1506) in its interleaved (max, mean) order: what
    # the back end (`BackendHead`) trains on.
    "pooled": Output("musicnn", lambda b, x: b.pooled(x), np.float32),
    # MSD_musicnn's front-end output, (n, 561, 187): what partial fine-tuning (`MidendHead`) trains
    # on. float16: 210 kB a window, half of float32, and its values (ReLU, then batch norm) are O(1).
    "frontend": Output("musicnn-frontend", lambda b, x: b.frontend(x), np.float16),
    # MSD_vgg's embedding, (n, 256), the flattened last pooling: for comparing backbones.
    "vgg-embedding": Output("vgg", lambda b, x: b(x).embedding, np.float32),
}


def backbone_outputs(
    paths: Sequence[str],
    backbone: Musicnn | MusicnnVgg,
    output: str,
    cache_dir: str | os.PathLike[str],
    max_windows: int | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """`OUTPUTS[output]` of `backbone` on each file's windows, (n_windows_i, ...), None for files
    that could not be decoded; and {path: reason} for those. Cached under
    ``cache_dir/<folder>-<weights hash>-<front end hash>-<placement>/<content hash>.npy``: other
    weights (a converted backbone redone, a fine-tuned one) never read another's features."""
    spec = OUTPUTS[output]
    frontend = musicnn_frontend()
    key = f"{spec.folder}-{weights_digest(backbone)}-{frontend_digest(frontend)}-{max_windows or 'all'}"
    folder = Path(cache_dir) / key
    session = None  # exported and loaded only when a file is not cached yet

    def compute(windows: np.ndarray) -> np.ndarray:
        nonlocal session
        session = session or _session(_Output(backbone, spec.compute), folder)
        return np.concatenate([session.run(None, {"input": windows[b : b + BATCH]})[0] for b in
                               range(0, len(windows), BATCH)])  # fmt: skip

    return cached_window_outputs(
        paths, folder, frontend, max_windows, compute, workers, what="backbone features", log=log, dtype=spec.dtype
    )


def weights_digest(network: torch.nn.Module) -> str:
    """12 hex digits of SHA-256 over a network's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


class _Output(torch.nn.Module):
    """One output of a backbone as a module, for the ONNX export."""

    def __init__(self, backbone: torch.nn.Module, compute: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.backbone, self.compute = backbone, compute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.compute(self.backbone, x)


def _session(network: torch.nn.Module, folder: Path):
    """`network` in onnxruntime: 3-7x faster than torch on CPU for musicnn's wide kernels."""
    onnxruntime = quiet_onnxruntime()
    path = folder / f"backbone.{os.getpid()}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    torch_to_onnx(network, path, torch.zeros(2, N_MELS, PATCH_FRAMES), "input", ["output"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    finally:
        path.unlink()
