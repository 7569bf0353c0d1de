#!/usr/bin/env bash
# Install what the tests need into .venv-test and run the whole suite (CPU only, no network).
set -euo pipefail
cd "$(dirname "$0")"
python=$(command -v python3.11 || command -v python3)
# ffmpeg decodes M4A/AAC and other formats libsndfile cannot read; the tests of those skip without it.
if ! command -v ffmpeg > /dev/null && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  echo "test.sh: installing ffmpeg (apt-get update, apt-get install ffmpeg)" >&2
  (apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq ffmpeg > /dev/null 2>&1) \
    || echo "test.sh: could not install ffmpeg; its tests will skip" >&2
fi
[ -x .venv-test/bin/python ] || "$python" -m venv .venv-test
leftovers=$({ [ -e build ] || echo build; ls -d ./*.egg-info > /dev/null 2>&1 || echo egg-info; })
.venv-test/bin/python -m pip install -q --disable-pip-version-check ".[test]"
# pip builds in the checkout; take away what this install left there (never what was there before).
case "$leftovers" in *build*) rm -rf build ;; esac
case "$leftovers" in *egg-info*) rm -rf ./*.egg-info ;; esac
.venv-test/bin/python -m pytest -q -rs "$@"
