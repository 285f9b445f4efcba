#!/usr/bin/env bash
# The README's test command, and the quick lane for development.
#
#   bash scripts/test.sh           Everything, as CI runs it. On a fresh machine: create
#                                  ./.venv, install the package with its test extra, the
#                                  venv's Jupyter kernel, a second venv (./.venv-ipk6) with
#                                  ipykernel 6 as a second kernel, and (best effort)
#                                  Chromium + JupyterLab for the browser tests; then lint,
#                                  type-check and run the whole suite, slow end-to-end
#                                  tests included: all but those that start real kernels
#                                  or a browser on two workers (pytest-xdist), then the
#                                  kernel, notebook and browser tests in one process,
#                                  sharing the machine with nothing.
#   bash scripts/test.sh --quick   While developing: the set-up above only when .venv lacks
#                                  it or pyproject.toml changed since, no second kernel and
#                                  no browser; lint, types, and the tests not marked slow
#                                  or browser, on two workers (pytest-xdist).
#
# Extra arguments go to pytest (after its own: `-n 0` runs the fast tests in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
QUICK=0
if [ "${1:-}" = "--quick" ]; then
    QUICK=1
    shift
fi

# The package and its test extra in .venv. The stamp names the pyproject.toml it was
# installed from, so the quick lane installs again after a dependency changes.
STAMP=.venv/.test-setup-$(sha1sum pyproject.toml | cut -c1-16)
if [ "$QUICK" = 0 ] || [ ! -e "$STAMP" ]; then
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    .venv/bin/python -m ipykernel install --sys-prefix >/dev/null
    rm -f .venv/.test-setup-*
    touch "$STAMP"
fi

if [ "$QUICK" = 1 ]; then
    .venv/bin/ruff check src tests bench scripts
    .venv/bin/mypy src
    exec .venv/bin/python -m pytest -m "not slow and not browser" -n 2 "$@"
fi

# A second kernel with ipykernel 6, registered in its own venv as batch-magic-ipk6:
# the kernel tests (tests/_kernels.py) run against it and against .venv's ipykernel 7.
# It holds what the notebooks import (the package with its eval extra, scikit-learn and
# scipy, for notebook 06; pydantic, matplotlib).
[ -x .venv-ipk6/bin/python ] || "$PY" -m venv .venv-ipk6
.venv-ipk6/bin/python -m pip install -q --upgrade pip
.venv-ipk6/bin/python -m pip install -q -e ".[eval,polars]" "ipykernel>=6.29,<7" "pydantic>=2" "matplotlib>=3.7"
.venv-ipk6/bin/python -m ipykernel install --sys-prefix --name batch-magic-ipk6 \
    --display-name "Python 3 (batch_magic, ipykernel 6)" >/dev/null
export BATCH_MAGIC_REQUIRE_IPK6=1  # so a missing ipykernel 6 kernel fails instead of skipping
# Chromium and JupyterLab for tests/browser; when they cannot be had, that test
# skips and says why.
bash scripts/install_browser.sh .venv
.venv/bin/ruff check src tests bench scripts
.venv/bin/mypy src
# Two runs: pytest's exit status 5 (nothing collected, e.g. a -k that picks tests of one
# lane only) is no failure as long as the other lane ran something.
status=0
.venv/bin/python -m pytest -m "not kernel and not browser" -n 2 "$@" || status=$?
fast=$status
status=0
.venv/bin/python -m pytest -m "kernel or browser" "$@" || status=$?
slow=$status
if [ "$fast" = 5 ] && [ "$slow" = 5 ]; then exit 5; fi
for code in "$fast" "$slow"; do
    if [ "$code" != 0 ] && [ "$code" != 5 ]; then exit "$code"; fi
done
