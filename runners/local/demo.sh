#!/usr/bin/env bash
# One command: set up, seed a local S3 + KVS world, run the pipeline on it, show the lake.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh" local
cd "$ROOT"
exec voicelake demo --workdir "${1:-$ROOT/demo-work}" "${@:2}"
