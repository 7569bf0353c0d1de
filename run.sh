#!/usr/bin/env bash
# Tag a folder of music with the bundled genre model, in a throw-away beets library.
#
#   ./run.sh MUSIC_FOLDER            # pretend: prints each track's genres with confidence, changes nothing
#   ./run.sh MUSIC_FOLDER --write    # also writes the genres into the files' tags
#
# Creates .venv (Python 3.11 or newer) and installs beets-genreclass into it first. The beets
# library lives in a temporary folder that is deleted afterwards; files are never moved or copied.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
music=${1:?usage: ./run.sh MUSIC_FOLDER [--write]}
mode=${2:---pretend}
case "$mode" in --pretend|--write) ;; *) echo "usage: ./run.sh MUSIC_FOLDER [--write]" >&2; exit 2 ;; esac
[ -d "$music" ] || { echo "not a folder: $music" >&2; exit 2; }
python=$(command -v python3.11 || command -v python3)

[ -x "$here/.venv/bin/python" ] || "$python" -m venv "$here/.venv"
"$here/.venv/bin/python" -m pip install -q --disable-pip-version-check "$here"

beetsdir=$(mktemp -d)
trap 'rm -rf "$beetsdir"' EXIT
cat > "$beetsdir/config.yaml" <<YAML
library: $beetsdir/library.db
directory: $beetsdir/unused
create_backup_before_migrations: no
plugins: [genreclass]
import: {copy: no, move: no, write: no, resume: no, incremental: no, duplicate_action: keep, log: null}
genreclass: {count: 1, min_confidence: 0.0}
YAML
export BEETSDIR="$beetsdir"
# -A: take files as they are (no MusicBrainz lookup); -s: as single tracks, so untagged files in one
# folder are not merged into one "album" and skipped as duplicates; -q: never ask.
if ! "$here/.venv/bin/beet" import -A -s -q "$music" > "$beetsdir/import.log" 2>&1; then
  cat "$beetsdir/import.log" >&2
  echo "beet import failed" >&2
  exit 1
fi
if [ "$mode" = --write ]; then
  "$here/.venv/bin/beet" genreclass --write
else
  "$here/.venv/bin/beet" genreclass --pretend
fi
