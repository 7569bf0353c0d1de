"""Build a throw-away beets library from a manifest: tagged copies of its clips, imported as-is.

Each clip is copied (the originals are never touched), tagged with its genre (spelt as a user
might: lower case, aliases) and with its group as album artist, then imported as a singleton. A
manifest with a ``genres`` column (``Rock; Pop``) gives each clip all of them (beets' multi-valued
``genres``); optional ``albumartist``, ``album`` and ``comp`` columns tag compilations.
The result is a realistic library to try `beet genreclass-train` on:

    python benchmarks/make_library.py ../shared/data/manifest.csv runs/demo-lib --dataset emotify \\
        [--model runs/lc/base-gtzan/model.onnx]
    BEETSDIR=runs/demo-lib beet genreclass-train --install
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mutagen

# How a collector's tags might spell the pool's labels; canonicalisation must undo this.
USER_SPELLINGS = {"Electronic": "electronica", "Hip-Hop": "hip hop", "Rock": "rock", "Pop": "POP"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("out", help="new folder: config.yaml, library.db and music/ go here")
    ap.add_argument("--dataset", help="only rows of this dataset")
    ap.add_argument("--model", help="genreclass.model for the library (the 'current model' to fine-tune)")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    music = out / "music"
    music.mkdir(parents=True, exist_ok=False)
    manifest = Path(args.manifest)
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if not args.dataset or r.get("dataset") == args.dataset]
    for i, row in enumerate(rows):
        src = manifest.parent / row["path"]
        dst = music / f"{i:04d}{src.suffix}"
        shutil.copyfile(src, dst)
        tags = mutagen.File(dst)
        tags["title"], tags["artist"] = f"clip {i}", row["group"]
        tags["albumartist"] = row.get("albumartist") or row["group"]
        if row.get("album"):
            tags["album"] = row["album"]
        if row.get("comp"):
            tags["compilation"] = "1"
        genres = [g.strip() for g in (row.get("genres") or row.get("label") or "").split(";") if g.strip()]
        tags["genre"] = [USER_SPELLINGS.get(g, g) for g in genres]
        tags.save()
    model = f"  model: {Path(args.model).resolve()}\n" if args.model else "  auto: no\n"  # a section, never null
    (out / "config.yaml").write_text(
        f"directory: {music}\nlibrary: {out / 'library.db'}\nplugins: [genreclass]\n"
        "create_backup_before_migrations: no\n"
        "import: {copy: no, write: no, resume: no, incremental: no, duplicate_action: keep}\n"
        f"genreclass:\n{model}"
    )
    beet = str(Path(sys.executable).with_name("beet"))
    subprocess.run([beet, "import", "-A", "-s", "-q", str(music)], env={**os.environ, "BEETSDIR": str(out)}, check=True)
    print(f"{len(rows)} tracks in {out}; use it with BEETSDIR={out}")


if __name__ == "__main__":
    main()
