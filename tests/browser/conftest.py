"""Fixtures for the browser end-to-end tests: a JupyterLab server and headless Chromium.

The server runs on 127.0.0.1 at a free port with a random token, its root_dir a
temporary folder, and every Jupyter config/data/runtime folder private to the
run so that nothing from the user's setup leaks in. Its only kernel is
``python3`` pointing at the interpreter running pytest (the project's venv).

The browser is Debian's Chromium at /usr/bin/chromium driven through
Playwright's Python package; Playwright's own browser download is never used.

When Chromium, Playwright or JupyterLab is missing the tests are skipped with
the cause (``scripts/install_browser.sh`` installs them); set
``BATCH_MAGIC_REQUIRE_BROWSER=1`` to turn that skip into a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
# Debian's Chromium; BATCH_MAGIC_CHROMIUM points elsewhere (e.g. to check the skip).
CHROMIUM = Path(os.environ.get("BATCH_MAGIC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
SERVER_START_TIMEOUT = 90.0
INSTALL_HINT = "run `bash scripts/install_browser.sh .venv` to install it"


# --------------------------------------------------------------------------- skips


def missing_prerequisite() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (Debian's chromium package is not installed; {INSTALL_HINT})"
    if importlib.util.find_spec("playwright") is None:
        return f"the playwright Python package is not installed in {sys.prefix} ({INSTALL_HINT})"
    if importlib.util.find_spec("jupyterlab") is None:
        return f"jupyterlab is not installed in {sys.prefix} ({INSTALL_HINT})"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("BATCH_MAGIC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test prerequisite missing (BATCH_MAGIC_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_prerequisites() -> None:
    reason = missing_prerequisite()
    if reason:
        skip_or_fail(reason)


# --------------------------------------------------------------------------- server


@dataclass
class LabServer:
    url: str
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(repr=False)

    def api(self, path: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_kernelspec(data_dir: Path) -> None:
    """A python3 kernelspec for this interpreter, first on JUPYTER_PATH."""
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (batch_magic venv)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def _write_lab_config(config_dir: Path) -> None:
    """Keep first-run pop-ups (news, update checks) out of the screenshots."""
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    page_config = {
        "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
    }
    (labconfig / "page_config.json").write_text(json.dumps(page_config))


def _check_widget_manager(env: dict[str, str]) -> None:
    """JupyterLab must list the ipywidgets 8 front end (jupyterlab_widgets)."""
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    listing = proc.stdout + proc.stderr
    if WIDGET_MANAGER not in listing:
        pytest.fail(
            f"`jupyter labextension list` does not show {WIDGET_MANAGER}; ipywidgets "
            f"cannot render in JupyterLab (is jupyterlab_widgets installed?). Output:\n{listing}"
        )


def _stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # Kernels and their children live in the same process group: end stragglers.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def lab_server(
    browser_prerequisites: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root_dir = base / "root"
    root_dir.mkdir()
    jupyter_home = base / "jupyter"
    config_dir = jupyter_home / "config"
    data_dir = jupyter_home / "data"
    runtime_dir = jupyter_home / "runtime"
    for d in (config_dir, data_dir, runtime_dir):
        d.mkdir(parents=True)
    _write_kernelspec(data_dir)
    _write_lab_config(config_dir)

    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_DATA_DIR=str(data_dir),
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
        JUPYTER_PATH=str(data_dir),
        IPYTHONDIR=str(jupyter_home / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    # Never point the kernel at the real API: the tests use the embedded simulator.
    env.pop("ANTHROPIC_API_KEY", None)
    _check_widget_manager(env)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "jupyterlab.log"
    token = secrets.token_hex(24)
    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_remote_access=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
        # window.jupyterapp, so the test can wait for the kernel session to be ready.
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.workspaces_dir={jupyter_home / 'workspaces'}",
        f"--LabApp.user_settings_dir={jupyter_home / 'settings'}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = LabServer(
        url=f"http://127.0.0.1:{port}", token=token, root_dir=root_dir,
        log_path=log_path, process=proc, env=env,
    )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer within {SERVER_START_TIMEOUT:.0f}s:\n"
                        f"{server.log_tail()}"
                    )
                time.sleep(0.25)
        specs = server.api("/api/kernelspecs")
        python3 = specs["kernelspecs"].get("python3")
        assert python3 is not None, f"no python3 kernelspec: {sorted(specs['kernelspecs'])}"
        argv0 = python3["spec"]["argv"][0]
        assert Path(argv0) == Path(sys.executable), (
            f"python3 kernel runs {argv0}, not this venv's {sys.executable}"
        )
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.api("/api/shutdown", method="POST", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        _stop_process_group(proc)


# --------------------------------------------------------------------------- browser


# Module scope, not session: Playwright's sync API keeps an asyncio loop running
# on the main thread while it is open, which would break every later test that
# starts or checks for a loop.
@pytest.fixture(scope="module")
def chromium(browser_prerequisites: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Screenshot folder for one test: test-artifacts/browser/<test name>/."""
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(chromium: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    pg.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(artifacts / "zz-failure.png"), full_page=True)
        (artifacts / "console.log").write_text("\n".join(console) + "\n")
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


# --------------------------------------------------------------------------- notebook


def write_notebook(root_dir: Path, name: str, sources: list[str]) -> Path:
    """Write a notebook of code cells (python3 kernel) into the server's root_dir."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    path = root_dir / name
    nbformat.write(nb, str(path))
    return path


class NotebookPage:
    """Drive one notebook in JupyterLab through its UI, with numbered screenshots."""

    def __init__(self, page: Any, server: LabServer, artifacts: Path) -> None:
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self._shots = 0

    # -- screenshots
    def shot(self, label: str, locator: Any = None) -> Path:
        self._shots += 1
        path = self.artifacts / f"{self._shots:02d}-{label}.png"
        if locator is None:
            self.page.screenshot(path=str(path))
        else:
            locator.screenshot(path=str(path))
        return path

    # -- locators
    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-Cell-outputArea")

    # -- actions
    def write(self, name: str, sources: list[str]) -> Path:
        return write_notebook(self.server.root_dir, name, sources)

    def open(self, name: str, timeout_ms: int = 90_000) -> None:
        from playwright.sync_api import expect

        self.page.goto(self.server.lab_url(name), wait_until="domcontentloaded")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout_ms)
        # The kernel is connected and idle: the toolbar's status indicator says so...
        indicator = self.page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator"
        )
        expect(indicator).to_have_attribute("data-status", "idle", timeout=timeout_ms)
        # ...and the session is ready to execute (before that, Shift+Enter is dropped).
        self.page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const w = app && app.shell.currentWidget;
                const ctx = w && w.sessionContext;
                const k = ctx && ctx.session && ctx.session.kernel;
                return !!(w.context && w.context.path === name && ctx.isReady && k
                          && k.connectionStatus === 'connected' && k.status === 'idle');
            }""",
            arg=name,
            timeout=timeout_ms,
        )

    def run_cell(self, index: int, timeout_ms: int = 60_000) -> Any:
        """Select cell `index`, press Shift+Enter and wait until it has finished.

        Finished means the prompt shows an execution count ("[3]:"), which it
        does only once the kernel has replied; returns the cell's output area.
        """
        import re

        from playwright.sync_api import expect

        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")
        expect(cell.locator(".jp-InputPrompt")).to_have_text(
            re.compile(r"\[\d+\]:"), timeout=timeout_ms
        )
        return self.output(index)

    def run_all(self) -> None:
        """Run > Run All Cells, from JupyterLab's menu bar, as a person would."""
        import re

        self.page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    def code_prompts(self) -> list[str]:
        """The input prompt of every code cell: "[3]:" once run, "[*]:" queued or running."""
        prompts = self.page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell .jp-InputPrompt"
        )
        return [text.strip() for text in prompts.all_text_contents()]

    def wait_all_run(self, timeout_s: float) -> list[int]:
        """Wait until every code cell shows an execution count; return them in cell order."""
        import re

        deadline = time.monotonic() + timeout_s
        while True:
            prompts = self.code_prompts()
            counts = [re.fullmatch(r"\[(\d+)\]:", p) for p in prompts]
            if prompts and all(counts):
                return [int(m.group(1)) for m in counts if m]
            if time.monotonic() > deadline:
                self.shot("zz-not-finished")
                raise AssertionError(f"cells not finished after {timeout_s:.0f} s: {prompts}")
            time.sleep(0.5)

    def assert_no_widget_errors(self, index: int) -> None:
        text = self.output(index).inner_text()
        assert "Error displaying widget" not in text, f"cell {index} output: {text}"
        assert "Loading widget" not in text, f"cell {index} output: {text}"
        errors = self.output(index).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        assert errors.count() == 0, f"cell {index} printed an error: {text}"


@pytest.fixture
def notebook(page: Any, lab_server: LabServer, artifacts: Path) -> NotebookPage:
    return NotebookPage(page, lab_server, artifacts)
