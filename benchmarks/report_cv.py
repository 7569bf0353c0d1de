"""Render a cv_report.json of cross_validate.py as Markdown tables (overall, per source, per class).

python benchmarks/report_cv.py runs/cv/cv_report.json
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main(path: str) -> None:
    report = json.load(open(path))
    methods = report["methods"]
    print(f"{report['folds']}-fold group CV, {report['epochs']} epochs, seed {report.get('seed', 0)}\n")
    print("| method | tracks | track acc | balanced acc | macro-F1 | all-window acc | fit s/fold |")
    print("|---|---|---|---|---|---|---|")
    for m, r in methods.items():
        every = r.get("track_accuracy_all_windows")
        print(
            f"| {m} | {r['n_tracks']} | {r['track_accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['macro_f1']:.3f} "
            f"| {'-' if every is None else f'{every:.3f}'} | {r['fit_seconds_per_fold']:.0f} |"
        )
    sources = sorted(next(iter(methods.values())).get("per_source", {}))
    print("\n| method | " + " | ".join(f"{s} acc / bal acc / F1 (n)" for s in sources) + " |")
    print("|---|" + "---|" * len(sources))
    for m, r in methods.items():
        cells = [
            f"{p['track_accuracy']:.3f} / {p['balanced_accuracy']:.3f} / {p['macro_f1']:.3f} ({p['n_tracks']})"
            for p in (r["per_source"][s] for s in sources)
        ]
        print(f"| {m} | " + " | ".join(cells) + " |")
    labels = next(iter(methods.values()))["labels"]
    print("\nPer class, F1 (recall):\n")
    print("| label | support | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for label in labels:
        support = next(iter(methods.values()))["per_class"][label]["support"]
        cells = [f"{r['per_class'][label]['f1']:.2f} ({r['per_class'][label]['recall']:.2f})" for r in methods.values()]
        print(f"| {label} | {support} | " + " | ".join(cells) + " |")
    for m in methods:
        pred_file = Path(path).parent / m / "predictions.csv"
        if not pred_file.exists():
            continue
        rows = list(csv.DictReader(open(pred_file)))
        print(f"\n{m}: accuracy and coverage when only confident predictions are written (min_confidence):\n")
        print("| min_confidence | tracks tagged | accuracy of the tags written |")
        print("|---|---|---|")
        for threshold in (0.0, 0.3, 0.4, 0.5, 0.7):
            kept = [r for r in rows if float(r["confidence"]) >= threshold]
            acc = sum(r["label"] == r["predicted"] for r in kept) / len(kept) if kept else float("nan")
            print(f"| {threshold:.1f} | {len(kept) / len(rows):.1%} | {acc:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
