#!/usr/bin/env bash
# The `long` validations (variational accuracy targets, full examples checked against their
# headers: tens of minutes on 2 cores), which CI does not run. Writes their outcome, wall time
# and figures, with the commit, to docs/long_runs.md. Extra arguments go to pytest (e.g. -k tfim).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY="${PYTHON:-python3}"
xml="$(mktemp -d)/long.xml"
set +e
"$PY" -m pytest -q -p no:cacheprovider -m long --junitxml="$xml" -o junit_family=xunit1 "$@"
rc=$?
set -e
"$PY" scripts/long_report.py "$xml" docs/long_runs.md
exit "$rc"
