"""Cache the pretrained MSD_musicnn's outputs on every window of the pool, for head experiments.

For each track and each window placement ("all": every whole window, contiguous, for
training; "8", "4", "2": `genre_model.window_starts` with that `max_windows`, as the plugin
listens), the backbone's pooled mid-end features (`training.features.embeddings.backbone_outputs`, the
same code the recipe build uses) and the pretrained 200-unit penultimate embedding.

    python benchmarks/musicnn_embed.py ../shared/data/manifest.csv --out runs/musicnn/pool.npz
    python benchmarks/musicnn_embed.py ../shared/data/manifest.csv --out runs/vgg/pool.npz --backbone msd_vgg

Writes one .npz: per placement P, ``P_pool`` (n_windows, 1506) float32 in musicnn's interleaved
(max, mean) order, ``P_emb`` (n_windows, 200) and ``P_offsets`` (n_tracks + 1: track i's windows
are offsets[i]:offsets[i+1]); and ``path``, ``label``, ``group``, ``source`` per track. With
``--backbone msd_vgg`` both ``P_pool`` and ``P_emb`` hold MSD_vgg's embedding, (n_windows, 256).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from training.data.tracks import load_manifest
from training.features.embeddings import backbone_outputs
from training.models.musicnn.network import load_pretrained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="runs/feature-cache")
    ap.add_argument("--placements", default="all,8,4,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backbone", choices=["msd_musicnn", "msd_vgg"], default="msd_musicnn",
                    help="msd_vgg: its 256-unit embedding stands in for both P_pool and P_emb")  # fmt: skip
    args = ap.parse_args()

    tracks = load_manifest(args.manifest)
    backbone = load_pretrained(args.backbone).eval()
    arrays: dict[str, np.ndarray] = {
        "path": np.array([t.path for t in tracks]),
        "label": np.array([t.label for t in tracks]),
        "group": np.array([t.group for t in tracks]),
        "source": np.array([t.source for t in tracks]),
    }
    for placement in args.placements.split(","):
        started = time.time()
        max_windows = None if placement == "all" else int(placement)
        output = "pooled" if args.backbone == "msd_musicnn" else "vgg-embedding"
        pooled, failures = backbone_outputs(
            [t.path for t in tracks], backbone, output, args.cache, max_windows, args.workers
        )
        if failures:
            raise SystemExit(f"could not decode: {failures}")
        pool = np.concatenate(pooled)
        if args.backbone == "msd_vgg":
            embedding = pool
        else:
            with torch.no_grad():  # the pretrained back end on the pooled features: its 'penultimate'
                x = backbone.pool_norm(torch.from_numpy(pool))
                embedding = backbone.dense_norm(torch.relu(backbone.dense(x))).numpy()
        arrays[f"{placement}_pool"] = pool
        arrays[f"{placement}_emb"] = embedding
        arrays[f"{placement}_offsets"] = np.cumsum([0] + [len(p) for p in pooled])
        print(f"{placement}: {len(pool)} windows in {time.time() - started:.0f} s", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
