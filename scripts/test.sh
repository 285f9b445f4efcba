#!/usr/bin/env bash
# Install the package with its test extra into ./.venv and run lint, types and
# the whole test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/ruff check src tests bench
.venv/bin/mypy src
.venv/bin/python -m pytest "$@"
