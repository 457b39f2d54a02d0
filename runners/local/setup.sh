# Sourced by demo.sh and test.sh: a project virtual environment with voicelake installed.
# Usage: . runners/local/setup.sh [extras]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${VOICELAKE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.voicelake-installed${EXTRAS:+-$EXTRAS}"
# also when an older editable install does not map every package of this checkout (one made before a
# package was added, whose SDK workers then fail with "No module named ...")
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.py" -nt "$STAMP" ] \
    || ! (cd / && "$VENV/bin/python" -c "import voicelake, pipeline, transforms, runners, schemas") 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
