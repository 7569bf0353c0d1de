"""Side-by-side table of several `learning_curve.py` runs, with per-fold paired differences.

    python benchmarks/report_curves.py "scratch=runs/lc/curve/learning_curve.json:scratch" \\
        "fine-tune A=runs/lc/curve/learning_curve.json:fine-tuned" ...

Each argument is NAME=PATH:METHOD. The first one is the reference for the paired differences
(same folds, same tracks per genre, same training tracks). With PLOT=FILE.png in the
environment, the curves (mean track accuracy over folds, with each fold's as dots) are drawn.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict


def load(spec: str) -> tuple[str, dict[tuple[int, int], dict]]:
    """NAME=PATH:METHOD -> (NAME, {(per_genre, fold): row})."""
    name, rest = spec.split("=", 1)
    path, method = rest.rsplit(":", 1)
    rows = json.loads(open(path, encoding="utf-8").read())
    return name, {(r["per_genre"], r["fold"]): r for r in rows if r["method"] == method}


def main() -> None:
    runs = [load(spec) for spec in sys.argv[1:]]
    ref_name, ref = runs[0]
    sizes = sorted({n for n, _ in ref})
    print(f"| tracks per genre | {' | '.join(name for name, _ in runs)} |")
    print("|---" * (len(runs) + 1) + "|")
    for n in sizes:
        cells = []
        for name, rows in runs:
            folds = sorted(f for m, f in rows if m == n)
            acc = [rows[(n, f)]["track_accuracy"] for f in folds]
            cell = f"{statistics.mean(acc):.3f}"
            if name != ref_name:
                diffs = [rows[(n, f)]["track_accuracy"] - ref[(n, f)]["track_accuracy"] for f in folds]
                cell += f" ({statistics.mean(diffs):+.3f}; " + ", ".join(f"{d:+.3f}" for d in diffs) + ")"
            cells.append(cell)
        print(f"| {n} | {' | '.join(cells)} |")
    overall = defaultdict(list)
    for name, rows in runs:
        overall[name] = [r["track_accuracy"] for r in rows.values()]
    print("\nmean over every size and fold: " + ", ".join(f"{k} {statistics.mean(v):.3f}" for k, v in overall.items()))
    if os.environ.get("PLOT"):
        plot(runs, sizes, os.environ["PLOT"])


def plot(runs: list[tuple[str, dict]], sizes: list[int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in runs:
        means = [statistics.mean(r["track_accuracy"] for (m, _), r in rows.items() if m == n) for n in sizes]
        (line,) = ax.plot(sizes, means, marker="o", label=name)
        for (n, _), r in rows.items():
            ax.scatter([n], [r["track_accuracy"]], s=8, color=line.get_color(), alpha=0.4)
    ax.set_xlabel("training tracks per genre")
    ax.set_ylabel("track accuracy, held-out artists")
    ax.set_xticks(sizes)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
