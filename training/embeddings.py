"""The pretrained backbone's pooled features on every window of each track, cached per file.

A frozen backbone gives the same features on every epoch, so they are computed once: for each
track, its windows under one placement (`genre_model.window_starts`: every whole window with
``max_windows=None``, or the plugin's placement), through `Musicnn.pooled`. Files live in
``CACHE/musicnn-<frontend hash>-<placement>/<content hash>.npy`` as float32 (n_windows, 1506).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from genre_model.frontend import musicnn_frontend
from training.features import cached_window_outputs, frontend_digest
from training.musicnn import Musicnn, MusicnnVgg

# Windows per backbone call: its activations take ~60 MB a window (4 GB at 64), and larger
# batches are no faster on a CPU (the plugin's batch_size measurement, docs/BENCHMARKS.md).
BATCH = 8


def pooled_features(
    paths: Sequence[str],
    backbone: Musicnn,
    cache_dir: str | os.PathLike[str],
    max_windows: int | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """Pooled mid-end features of each file's windows, (n_windows_i, 1506) float32, None for
    files that could not be decoded; and {path: reason} for those."""
    return _cached_outputs(paths, _Pooled(backbone), "musicnn", cache_dir, max_windows, workers, log)


def frontend_outputs(
    paths: Sequence[str],
    backbone: Musicnn,
    cache_dir: str | os.PathLike[str],
    max_windows: int | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """The front end's output on each file's windows, (n_windows_i, 561, 187) float16 (210 kB a
    window: half the disk and memory of float32, and its values, ReLU then batch norm, are O(1)),
    None for files that could not be decoded; and {path: reason} for those. What partial
    fine-tuning (`training.musicnn_head.MidendHead`) trains on."""
    return _cached_outputs(paths, _Frontend(backbone), "musicnn-frontend", cache_dir, max_windows, workers, log,
                           np.float16)  # fmt: skip


def vgg_embeddings(
    paths: Sequence[str],
    backbone: MusicnnVgg,
    cache_dir: str | os.PathLike[str],
    max_windows: int | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """MSD_vgg's embedding (the flattened last pooling, (n_windows_i, 256) float32) of each file's
    windows, None for files that could not be decoded; and {path: reason} for those. For
    comparing backbones (`benchmarks/musicnn_embed.py --backbone msd_vgg`)."""
    return _cached_outputs(paths, _VggEmbedding(backbone), "vgg", cache_dir, max_windows, workers, log)


def _cached_outputs(
    paths: Sequence[str],
    network: torch.nn.Module,
    kind: str,
    cache_dir: str | os.PathLike[str],
    max_windows: int | None,
    workers: int,
    log: Callable[[str], None],
    dtype: type[np.floating] = np.float32,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    frontend = musicnn_frontend()
    folder = Path(cache_dir) / f"{kind}-{frontend_digest(frontend)}-{max_windows or 'all'}"
    session = None  # exported and loaded only when a file is not cached yet

    def compute(windows: np.ndarray) -> np.ndarray:
        nonlocal session
        session = session or _session(network, folder)
        return np.concatenate([session.run(None, {"input": windows[b : b + BATCH]})[0] for b in
                               range(0, len(windows), BATCH)])  # fmt: skip

    return cached_window_outputs(
        paths, folder, frontend, max_windows, compute, workers, what="backbone features", log=log, dtype=dtype
    )


class _Pooled(torch.nn.Module):
    def __init__(self, backbone: Musicnn) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.pooled(x)


class _Frontend(torch.nn.Module):
    def __init__(self, backbone: Musicnn) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.frontend(x)


class _VggEmbedding(torch.nn.Module):
    def __init__(self, backbone: MusicnnVgg) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).embedding


def _session(network: torch.nn.Module, folder: Path):
    """`network` in onnxruntime: 3-7x faster than torch on CPU for musicnn's wide kernels."""
    import onnxruntime

    path = folder / f"backbone.{os.getpid()}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        network.eval(), (torch.zeros(2, 96, 187),), str(path), input_names=["input"],
        output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    onnxruntime.set_default_logger_severity(3)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    finally:
        path.unlink()
