"""Build a genre model on the pretrained MSD_musicnn from a recipe file (recipes/*.json).

A recipe names every setting that made a shipped model: the backbone, the head's fine-tuning
(`BackendConfig`), the seed and the model's name. `build` computes (or reads from the cache)
the frozen part's outputs on every whole window of each track (the pooled mid-end features, or
with ``tune_midend`` the front end's outputs), fine-tunes the layers above on them, and exports
backbone + head as one self-describing `.onnx`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from genre_model import ModelInfo, track_features
from genre_model.frontend import musicnn_frontend
from genre_model.model_file import version_stamp
from training.data.tracks import Track
from training.engine.config import read_recipe_file
from training.errors import ConfigError


@dataclasses.dataclass
class Recipe:
    """A musicnn-based model's settings; `backend` holds `BackendConfig` fields."""

    name: str = "genreclass-default"
    backbone: str = "msd_musicnn"
    seed: int = 0
    backend: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read a recipe; unknown keys raise `ConfigError` (a typo must not fall back to a default)."""
        from training.models.musicnn.heads import BackendConfig

        data = read_recipe_file(path)
        known = {f.name for f in dataclasses.fields(cls)}
        if set(data) - known:
            raise ConfigError(f"{path}: unknown recipe keys {sorted(set(data) - known)}")
        backend = data.get("backend", {})
        unknown = set(backend) - {f.name for f in dataclasses.fields(BackendConfig)}
        if unknown:
            raise ConfigError(f"{path}: unknown backend keys {sorted(unknown)}")
        if data.get("backbone", "msd_musicnn") != "msd_musicnn":
            raise ConfigError(f"{path}: only the msd_musicnn backbone has a genre head, got {data['backbone']!r}")
        return cls(**data)


def build(
    recipe: Recipe,
    tracks: Sequence[Track],
    out_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    metrics: dict[str, Any] | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the recipe's head on every track of `tracks` and export `out_path`.

    metrics: figures for the file's card (e.g. from a cross-validation report). returns the
    export's parity result.
    """
    import torch

    from training.export.onnx_export import export_onnx
    from training.features.embeddings import backbone_outputs
    from training.models.musicnn.heads import BackendConfig, MusicnnGenre, fit_backend
    from training.models.musicnn.network import load_pretrained

    config = BackendConfig(**recipe.backend)
    labels = sorted({t.label for t in tracks})
    backbone = load_pretrained(recipe.backbone)
    output = "frontend" if config.tune_midend else "pooled"
    per_track, failures = backbone_outputs([t.path for t in tracks], backbone, output, cache_dir, None, workers, log)
    for path, reason in failures.items():
        log(f"skipped {path}: {reason}")
    kept = [(t, p) for t, p in zip(tracks, per_track, strict=True) if p is not None]
    x = np.concatenate([p for _, p in kept])
    y = np.concatenate([np.full(len(p), labels.index(t.label)) for t, p in kept])
    tuned = "the mid-end and back end" if config.tune_midend else "the back end"
    log(f"fine-tuning {tuned}: {len(kept)} tracks, {len(x)} windows, {len(labels)} labels, {config.epochs} epochs")
    started = time.time()
    head = fit_backend(x, y, len(labels), config, seed=recipe.seed)
    model = MusicnnGenre(backbone, head).eval()
    frontend = musicnn_frontend()
    info = ModelInfo(
        name=recipe.name,
        version=version_stamp(),
        labels=tuple(labels),
        frontend=frontend,
        training={
            "arch": "musicnn-midend" if config.tune_midend else "musicnn-backend",
            "backbone": f"{recipe.backbone} (musicnn 0.1.0, Pons & Serra 2019, ISC licence)",
            "recipe": dataclasses.asdict(recipe),
            "backend_config": dataclasses.asdict(config),
            "n_train_tracks": len(kept),
            "n_train_windows": int(len(x)),
            "label_counts": dict(Counter(t.label for t, _ in kept)),
            "sources": sorted({t.source for t, _ in kept}),
            "fit_seconds": round(time.time() - started, 1),
        },
        metrics=metrics or {},
    )
    parity = np.concatenate([track_features(t.path, frontend, 2) for t, _ in kept[:4]])
    with torch.no_grad():
        return export_onnx(model, info, out_path, parity)
