#!/usr/bin/env bash
# Installs physml and what it needs into the current Python (editable, with the test extras).
# Where no torch is present, installs the pinned CPU build first, so that pip never resolves the
# package's torch range to the multi-GB CUDA build on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "physml: installing torch (pinned CPU build)" >&2
    "$PY" -m pip install --quiet "torch==2.13.0"
fi
# (triton, a test extra for the generated GPU kernels, exists for x86-64 Linux only)
if ! "$PY" -c "import physml_lang, pytest, ruff, sklearn, pandas, arviz, nbclient, ipykernel, pygls, pygments, mkdocs, numba, hypothesis, importlinter, threadpoolctl, platform, sys; sys.platform != 'linux' or platform.machine() != 'x86_64' or __import__('triton')" >/dev/null 2>&1 || [ "${PHYSML_REINSTALL:-0}" = 1 ]; then
    echo "physml: installing physml (editable) and its test extras" >&2
    "$PY" -m pip install --quiet -e ".[test,examples,data,notebook,editor,docs]"
fi
