#!/usr/bin/env bash
# Tag a folder of music with the bundled genre model, in a throw-away beets library.
#
#   ./run.sh MUSIC_FOLDER              # pretend: what --write would do, each track with the model's best
#                                      # guesses (uncertain: none reaches min_confidence 0.6), or the reason
#                                      # it is skipped; changes nothing
#   ./run.sh MUSIC_FOLDER --write      # writes the genres that reach min_confidence (0.6) into the files' tags
#   ./run.sh MUSIC_FOLDER --force      # classify tracks that already have genre tags too
#   ./run.sh MUSIC_FOLDER --model FILE # another model (.onnx, or the bundled "fast") than the default
#
# Creates .venv (Python 3.11 or newer) and installs beets-genreclass into it first
# (GENRECLASS_VENV=DIR uses that virtual environment instead). The beets library lives in a
# temporary folder that is deleted afterwards; files are never moved or copied. Results go to
# stdout, so `./run.sh music > results.txt` keeps them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: ./run.sh MUSIC_FOLDER [--write] [--force] [--model FILE]" >&2; exit 2; }
[ $# -ge 1 ] || usage
music=$1; shift
case "$music" in -*) usage ;; esac
mode=--pretend force=() model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --write) mode=--write ;;
    --force) force=(--force) ;;
    --model) [ $# -ge 2 ] || usage
             case "$2" in default|fast) model=$2 ;; *) model=$(cd "$(dirname "$2")" && pwd)/$(basename "$2") ;; esac
             shift ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
  shift
done
[ -d "$music" ] || { echo "not a folder: $music" >&2; exit 2; }
python=$(command -v python3.11 || command -v python3)
audio=$(find "$music" -type f \( -iname '*.mp3' -o -iname '*.flac' -o -iname '*.ogg' -o -iname '*.opus' \
  -o -iname '*.m4a' -o -iname '*.wav' -o -iname '*.aif' -o -iname '*.aiff' -o -iname '*.wma' -o -iname '*.ape' \
  -o -iname '*.wv' -o -iname '*.mpc' -o -iname '*.alac' -o -iname '*.aac' \) | head -1)
[ -n "$audio" ] || { echo "no audio files in $music (looked for MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF, WMA, ...)" >&2; exit 1; }

venv=${GENRECLASS_VENV:-$here/.venv}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# Install this checkout once, and again only when its sources change: the stamp holds a hash of them.
stamp=$(cd "$here" && find setup.cfg pyproject.toml beetsplug genre_model training -type f \
  ! -path '*/__pycache__/*' -print0 2>/dev/null | sort -z | xargs -0 cat | cksum | cut -d' ' -f1)
if [ "$(cat "$venv/.genreclass-installed" 2>/dev/null)" != "$stamp" ]; then
  echo "run.sh: installing beets-genreclass and its dependencies into $venv (about 30 s, first run only)..." >&2
  leftovers=$(cd "$here" && { [ -e build ] || echo build; ls -d ./*.egg-info > /dev/null 2>&1 || echo egg-info; })
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check "$here" > "$venv/install.log" 2>&1; then
    cat "$venv/install.log" >&2
    echo "run.sh: installing beets-genreclass failed (the log above is in $venv/install.log)" >&2
    exit 1
  fi
  # pip builds in the checkout; take away what this install left there (never what was there before).
  case "$leftovers" in *build*) rm -rf "$here/build" ;; esac
  case "$leftovers" in *egg-info*) rm -rf "$here"/*.egg-info ;; esac
  echo "$stamp" > "$venv/.genreclass-installed"
fi

beetsdir=$(mktemp -d)
trap 'rm -rf "$beetsdir"' EXIT
cat > "$beetsdir/config.yaml" <<YAML
library: $beetsdir/library.db
directory: $beetsdir/unused
create_backup_before_migrations: no
format_item: \$path
ui: {color: $([ -t 1 ] && echo yes || echo no)}
plugins: [genreclass]
import: {copy: no, move: no, write: no, resume: no, incremental: no, duplicate_action: keep, log: null}
genreclass: {count: 1, model: "$model"}
YAML
export BEETSDIR="$beetsdir"
# -A: take files as they are (no MusicBrainz lookup); -s: as single tracks, so untagged files in one
# folder are not merged into one "album" and skipped as duplicates; -q: never ask.
if ! "$venv/bin/beet" import -A -s -q "$music" > "$beetsdir/import.log" 2>&1; then
  cat "$beetsdir/import.log" >&2
  echo "beet import failed" >&2
  exit 1
fi
# Files beets itself could not read never reach the tagger, and beets drops them without a word: name them.
"$venv/bin/beet" ls -f '$path' > "$beetsdir/imported.txt"
find "$music" -type f \( -iname '*.mp3' -o -iname '*.flac' -o -iname '*.ogg' -o -iname '*.opus' -o -iname '*.m4a' \
  -o -iname '*.wav' -o -iname '*.aif' -o -iname '*.aiff' -o -iname '*.wma' -o -iname '*.ape' -o -iname '*.wv' \
  -o -iname '*.mpc' -o -iname '*.alac' -o -iname '*.aac' \) -print0 |
  while IFS= read -r -d '' f; do
    full=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
    grep -qxF "$full" "$beetsdir/imported.txt" || echo "run.sh: $f: beets could not read it (corrupt or not audio); not classified" >&2
  done
"$venv/bin/beet" genreclass "$mode" "${force[@]}"
