#!/usr/bin/env bash
# One command: set up (venv with test extras, mkvtoolnix as the parser's oracle, Chromium to render
# the report) and run the tests.
set -euo pipefail
need=()
command -v mkvextract >/dev/null 2>&1 || need+=(mkvtoolnix)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing ${need[*]} with apt ..." >&2
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh" test
cd "$ROOT"
exec python -m pytest -q "$@"
