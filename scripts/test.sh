#!/usr/bin/env bash
# The test suite: installs what it needs, lints (ruff, physml fmt --check), then runs the
# default (not slow) tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the long validations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY="${PYTHON:-python3}"
"$PY" -m ruff check .
"$PY" -m physml_lang.cli fmt --check examples stdlib
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
