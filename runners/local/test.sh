#!/usr/bin/env bash
# One command: set up (venv with test extras, mkvtoolnix as the parser's oracle) and run the tests.
set -euo pipefail
if ! command -v mkvextract >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mkvtoolnix >/dev/null
fi
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh" test
cd "$ROOT"
exec python -m pytest -q "$@"
