"""What a network reads from each track, computed once and cached, one class per kind of input.

The registry (`training.models.registry`) names each architecture's kind of input; `inputs_for`
makes the matching source. Every source gives, per file:
- `training`: what training windows are drawn from: the log-mel spectrogram (n_mels, T) for
  windows cut at random offsets, or the network's input of every whole window (n_windows, ...);
- `inference`: the network's input for the windows the plugin analyses (`genre_model.window_starts`
  with `max_windows`), so validation and cross-validation judge what users get.
Caches are keyed by file content (and front end, and backbone weights): a renamed file is not
recomputed, another front end or backbone never reads stale features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from genre_model import FrontendConfig
from training.features.cache import Digests, FeatureCache, cached_window_outputs

if TYPE_CHECKING:
    from training.engine.config import TrainConfig

Log = Callable[[str], None]
Found = tuple[list[np.ndarray | None], dict[str, str]]  # per path an array or None, {path: failure reason}


class Inputs(Protocol):
    frontend: FrontendConfig
    rows: bool  # `training` gives one row per window (True) or a spectrogram to crop (False)
    crop_frames: int

    def training(self, paths: Sequence[str], log: Log) -> Found: ...

    def inference(self, paths: Sequence[str], max_windows: int | None, log: Log) -> Found: ...


class LogMelInputs:
    """Log-mel windows under `frontend`: spectrograms for training (`FeatureCache`), the plugin's
    windows for inference, both under ``root/<front end hash>/``."""

    rows = False
    crop_frames = 0

    def __init__(
        self, root: str | os.PathLike[str], frontend: FrontendConfig, digests: Digests | None = None,
        workers: int = 2,
    ) -> None:  # fmt: skip
        self.cache = FeatureCache(root, frontend)
        self.frontend, self.workers = frontend, workers
        self.digests = Digests() if digests is None else digests  # shared with the split check

    def training(self, paths: Sequence[str], log: Log) -> Found:
        failures = self.digests.unreadable(paths)
        readable = [p for p in paths if p not in failures]

        def progress(done: int, todo: int) -> None:
            if done == todo or done % 50 == 0:
                log(f"features: {done}/{todo} computed")

        failures |= self.cache.ensure(readable, [self.digests[p] for p in readable], self.workers, progress)
        return [None if p in failures else self.cache.load(self.digests[p]) for p in paths], failures

    def inference(self, paths: Sequence[str], max_windows: int | None, log: Log) -> Found:
        return cached_window_outputs(
            paths, self.cache.dir / f"windows-{max_windows or 'all'}", self.frontend, max_windows,
            _unchanged, self.workers, self.digests, "validation windows", log,
        )  # fmt: skip


class BackboneInputs:
    """A frozen pretrained backbone's `output` ("pooled" or "frontend", see
    `training.features.embeddings.OUTPUTS`) on each window, cached under `root`."""

    rows = True

    def __init__(self, root: str | os.PathLike[str], output: str, workers: int = 2, crop_frames: int = 0) -> None:
        from genre_model.frontend import musicnn_frontend
        from training.models.musicnn.heads import BACKBONE
        from training.models.musicnn.network import load_pretrained

        self.root, self.output, self.workers, self.crop_frames = Path(root), output, workers, crop_frames
        self.frontend = musicnn_frontend()
        self.backbone = load_pretrained(BACKBONE)

    def training(self, paths: Sequence[str], log: Log) -> Found:
        return self.inference(paths, None, log)  # every whole window, one row each

    def inference(self, paths: Sequence[str], max_windows: int | None, log: Log) -> Found:
        from training.features.embeddings import backbone_outputs

        return backbone_outputs(paths, self.backbone, self.output, self.root, max_windows, self.workers, log)


# The registry's kinds of input -> the backbone output a `BackboneInputs` caches.
_BACKBONE_OUTPUTS = {"musicnn-pooled": "pooled", "musicnn-frontend": "frontend"}


def inputs_for(
    config: TrainConfig, root: str | os.PathLike[str], digests: Digests | None = None, workers: int = 2
) -> Inputs:
    """The source of what `config.arch` reads, its caches under `root`."""
    kind = config.architecture.inputs
    if kind == "log-mel":
        return LogMelInputs(root, config.frontend_config(), digests, workers)
    return BackboneInputs(root, _BACKBONE_OUTPUTS[kind], workers, config.crop_frames)


def _unchanged(windows: np.ndarray) -> np.ndarray:
    """The decoded log-mel windows are the network's input as they are."""
    return windows
