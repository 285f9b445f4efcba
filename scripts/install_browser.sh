#!/usr/bin/env bash
# Install what the browser end-to-end test (tests/browser) needs:
#   - Debian's Chromium at /usr/bin/chromium (apt), when not already present;
#   - JupyterLab and Playwright's Python package into the given venv.
# Playwright's own browser download is never used: the test drives
# /usr/bin/chromium through executable_path.
#
# Usage: bash scripts/install_browser.sh [VENV_DIR]   (default: .venv; created if missing)
# Idempotent. Exits 0 even when Chromium cannot be installed; the test then
# skips with the reason, and this script says so on a line starting with
# "install_browser:".
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    echo "install_browser: creating the venv $VENV"
    "${PYTHON:-python3}" -m venv "$VENV" || { echo "install_browser: cannot create $VENV" >&2; exit 1; }
fi

# 1. Chromium from Debian.
if [ -x /usr/bin/chromium ]; then
    echo "install_browser: chromium already present: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
else
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        fi
    fi
    if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
        echo "install_browser: CHROMIUM NOT INSTALLED (not root and no sudo); the browser test will be skipped"
    elif ! command -v apt-get >/dev/null 2>&1; then
        echo "install_browser: CHROMIUM NOT INSTALLED (no apt-get on this machine); the browser test will be skipped"
    else
        export DEBIAN_FRONTEND=noninteractive
        if $SUDO apt-get update -q >/tmp/install_browser_apt.log 2>&1 \
            && $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core \
                >>/tmp/install_browser_apt.log 2>&1 \
            && [ -x /usr/bin/chromium ]; then
            echo "install_browser: chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
        else
            echo "install_browser: CHROMIUM NOT INSTALLED (apt-get failed, see /tmp/install_browser_apt.log); the browser test will be skipped"
            tail -n 5 /tmp/install_browser_apt.log 2>/dev/null | sed 's/^/install_browser:   /'
        fi
    fi
fi

# 2. JupyterLab and Playwright's Python package (no browser download).
if "$PY" -c "import jupyterlab, playwright, jupyterlab_widgets" 2>/dev/null; then
    echo "install_browser: jupyterlab and playwright already in $VENV"
else
    if "$PY" -m pip install -q "jupyterlab>=4,<5" "playwright>=1.40" "ipywidgets>=8" "ipykernel>=6.29"; then
        echo "install_browser: installed jupyterlab and playwright into $VENV"
    else
        echo "install_browser: PIP INSTALL FAILED for jupyterlab/playwright; the browser test will be skipped"
    fi
fi

# 3. The kernel the notebook server starts must be this venv's python.
"$PY" -m ipykernel install --sys-prefix >/dev/null 2>&1 \
    && echo "install_browser: kernelspec python3 -> $("$PY" -c 'import sys; print(sys.executable)')" \
    || echo "install_browser: could not install the venv's kernelspec (ipykernel missing?)"

# 4. Report whether the ipywidgets front end is present in JupyterLab.
if [ -x "$VENV/bin/jupyter" ] && "$VENV/bin/jupyter" labextension list 2>&1 | grep -q "@jupyter-widgets/jupyterlab-manager"; then
    echo "install_browser: JupyterLab widget manager extension found (@jupyter-widgets/jupyterlab-manager)"
else
    echo "install_browser: WARNING: @jupyter-widgets/jupyterlab-manager not listed by 'jupyter labextension list'"
fi
exit 0
