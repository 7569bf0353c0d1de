#!/usr/bin/env bash
# Install what the tests need into .venv-test and run the whole suite (CPU only, no network).
set -euo pipefail
cd "$(dirname "$0")"
python=$(command -v python3.11 || command -v python3)
# ffmpeg is only needed for the m4a/AAC tests; they skip without it.
if ! command -v ffmpeg > /dev/null && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  (apt-get install -y -qq ffmpeg > /dev/null 2>&1 || true)
fi
[ -x .venv-test/bin/python ] || "$python" -m venv .venv-test
.venv-test/bin/python -m pip install -q --disable-pip-version-check ".[test]"
.venv-test/bin/python -m pytest -q "$@"
