"""How far a clip's first, middle and last window stray from the mean of its inner windows.

Reads `musicnn_embed.py`'s cache (pooled MSD_musicnn features of every whole window) and prints,
per source, the mean over clips of |window - inner mean| / |inner mean| (both averaged over the
1506 features), the inner mean being that of every window but the first and the last. Used in
docs/BENCHMARKS.md ("The clip-mean probe explained").

    python benchmarks/clip_edges.py runs/musicnn/pool.npz
"""

from __future__ import annotations

import argparse

import numpy as np
from musicnn_cv import Cache


def relative_distance(window: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(window - reference).mean() / np.abs(reference).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    args = ap.parse_args()
    cache = Cache(args.cache)
    for source in sorted({t.source for t in cache.tracks}):
        idx = [i for i, t in enumerate(cache.tracks) if t.source == source]
        x, owner = cache.windows("all", "pool", idx)
        distances: dict[str, list[float]] = {"first": [], "middle": [], "last": []}
        for k in range(len(idx)):
            windows = x[owner == k]
            if len(windows) < 3:
                continue
            inner = windows[1:-1].mean(axis=0)
            distances["first"].append(relative_distance(windows[0], inner))
            distances["middle"].append(relative_distance(windows[len(windows) // 2], inner))
            distances["last"].append(relative_distance(windows[-1], inner))
        figures = ", ".join(f"{name} {np.mean(d):.3f}" for name, d in distances.items())
        print(f"{source} ({len(distances['first'])} clips): {figures}")


if __name__ == "__main__":
    main()
