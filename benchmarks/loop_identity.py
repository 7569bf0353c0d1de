"""Does a refactor change what a recipe trains? A short run of a recipe, its losses and weight sum printed.

Run it in two checkouts (e.g. a worktree of the old revision) and compare the lines:

    git worktree add /tmp/old be164bf
    (cd /tmp/old && PYTHONPATH=. python /path/to/benchmarks/loop_identity.py ../shared/data/manifest.csv --api old)
    PYTHONPATH=. python benchmarks/loop_identity.py ../shared/data/manifest.csv

--api old: the training API before issue 21's one-loop change (`prepare` on a `FeatureCache`).
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--recipe", default="recipes/fast.json")
    ap.add_argument("--every", type=int, default=12, help="every Nth track of the manifest")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cache", default="runs/feature-cache")
    ap.add_argument("--api", choices=["old", "new"], default="new")
    args = ap.parse_args()

    from training.data.tracks import load_manifest
    from training.engine.config import TrainConfig
    from training.engine.loop import fit
    from training.features.windows import prepare

    tracks = load_manifest(args.manifest)[:: args.every]
    labels = sorted({t.label for t in tracks})
    cfg = TrainConfig.read(args.recipe).with_overrides({"epochs": args.epochs, "threads": 2, "min_tracks": 1})
    if args.api == "new":
        from training.features.inputs import LogMelInputs

        train, _ = prepare(tracks, labels, LogMelInputs(args.cache, cfg.frontend_config(), None, 2))
    else:
        from genre_model import FrontendConfig
        from training.features.cache import FeatureCache

        train, _ = prepare(tracks, labels, FeatureCache(args.cache, FrontendConfig()), {}, 2)
    result = fit(train, None, cfg, log=lambda s: None)
    print(json.dumps([(h["epoch"], h["train_loss"]) for h in result.history]))
    print(sum(float(p.double().sum()) for p in result.model.state_dict().values() if p.is_floating_point()))


if __name__ == "__main__":
    main()
