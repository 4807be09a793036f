#!/usr/bin/env bash
# The test suite: installs what it needs, lints, then runs the default (not slow) tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the long validations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY="${PYTHON:-python3}"
"$PY" -m ruff check .
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
