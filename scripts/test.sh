#!/usr/bin/env bash
# The README's test command. On a fresh machine: create ./.venv, install the
# package with its test extra, the venv's Jupyter kernel, and (best effort)
# Chromium + JupyterLab for the browser test; then lint, type-check and run
# the whole suite, slow end-to-end tests included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m ipykernel install --sys-prefix >/dev/null
# Chromium and JupyterLab for tests/browser; when they cannot be had, that test
# skips and says why.
bash scripts/install_browser.sh .venv
.venv/bin/ruff check src tests bench scripts
.venv/bin/mypy src
.venv/bin/python -m pytest "$@"
