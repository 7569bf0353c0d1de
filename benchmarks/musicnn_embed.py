"""Cache the pretrained MSD_musicnn's outputs on every window of the pool, for head experiments.

For each track and each window placement ("all": every whole window, contiguous, for
training; "8", "4", "2": `genre_model.window_starts` with that `max_windows`, as the plugin
listens), the backbone's pooled mid-end features (max | mean over time, 2 x 753) and its
200-unit penultimate embedding, computed from `genre_model.log_mel` with `musicnn_frontend()`.

    python benchmarks/musicnn_embed.py ../shared/data/manifest.csv --out runs/musicnn/pool.npz

Writes one .npz: per placement P, ``P_pool`` (n_windows, 1506) float32, ``P_emb`` (n_windows,
200) and ``P_offsets`` (n_tracks + 1: track i's windows are offsets[i]:offsets[i+1]); and
``path``, ``label``, ``group``, ``source`` per track.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from genre_model import DecoderPool, track_features
from genre_model.frontend import musicnn_frontend
from training.datasets import load_manifest
from training.musicnn import load_pretrained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--out", required=True)
    ap.add_argument("--placements", default="all,8,4,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    tracks = load_manifest(args.manifest)
    frontend = musicnn_frontend()
    model = load_pretrained("msd_musicnn").eval()
    torch.set_num_threads(2)
    arrays: dict[str, np.ndarray] = {
        "path": np.array([t.path for t in tracks]),
        "label": np.array([t.label for t in tracks]),
        "group": np.array([t.group for t in tracks]),
        "source": np.array([t.source for t in tracks]),
    }
    with DecoderPool(args.workers) as pool:
        for placement in args.placements.split(","):
            max_windows = None if placement == "all" else int(placement)
            started = time.time()
            features: list[np.ndarray | None] = [None] * len(tracks)
            jobs = ((i, t.path) for i, t in enumerate(tracks))
            for i, path, result in pool.imap(track_features, jobs, frontend, max_windows):
                if isinstance(result, Exception):
                    raise SystemExit(f"{path}: {result}")
                features[i] = result
            windows = np.concatenate(features)  # (n_windows, 96, 187)
            pooled, embedded = [], []
            with torch.no_grad():
                for b in range(0, len(windows), args.batch):
                    out = model(torch.from_numpy(windows[b : b + args.batch]))
                    pooled.append(torch.cat([out.max_pool, out.mean_pool], dim=1).numpy())
                    embedded.append(out.embedding.numpy())
            arrays[f"{placement}_pool"] = np.concatenate(pooled).astype(np.float32)
            arrays[f"{placement}_emb"] = np.concatenate(embedded).astype(np.float32)
            arrays[f"{placement}_offsets"] = np.cumsum([0] + [f.shape[0] for f in features])
            seconds = time.time() - started
            print(
                f"{placement}: {len(windows)} windows in {seconds:.0f} s ({1000 * seconds / len(windows):.1f} ms/window)"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
