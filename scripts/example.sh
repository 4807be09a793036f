#!/usr/bin/env bash
# The flagship: installs what it needs, then runs the 2D Ising temperature scan.
# Results land in runs/ising2d-scan/ (summary.json, results.csv, plot.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY="${PYTHON:-python3}"
exec "$PY" -m physml_lang.cli run examples/ising2d.phys --out runs/ising2d-scan "$@"
