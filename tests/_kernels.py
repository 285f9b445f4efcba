"""Real Jupyter kernels for the end-to-end tests, and a client that queues cells.

Two kernels: this interpreter's (the venv's ipykernel, 7.x, what
``pip install jupyterlab`` brings) and one with ipykernel 6 from a second venv,
``.venv-ipk6``, which ``scripts/test.sh`` makes and registers as the kernelspec
``batch-magic-ipk6`` under that venv's prefix. A test that takes the
``kernel_name`` fixture runs against each; the ipykernel 6 run is skipped, with
the reason, when that venv is missing (``BATCH_MAGIC_REQUIRE_IPK6=1``, which
``scripts/test.sh`` sets, turns the skip into a failure).

``QueuedKernel`` talks to a kernel with a plain ``jupyter_client`` and sends
every execute request at once, without waiting for replies, as JupyterLab's
Run All does (nbclient sends one cell at a time, which hides what Run All
meets on ipykernel 7: every queued cell is a task on the kernel's loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
IPK6_VENV = Path(os.environ.get("BATCH_MAGIC_IPK6_VENV", ROOT / ".venv-ipk6"))
IPK6_KERNEL = "batch-magic-ipk6"
THIS_KERNEL = "batch-magic-this"
THIS_IPYKERNEL = version("ipykernel")

#: What a wedged or re-entered kernel prints, or an error raised where nobody hears
#: it; never in any output of a healthy run.
BAD_SIGNS = (
    "Task was destroyed", "already entered", "was never awaited",
    "exception was never retrieved", "Exception in thread",
)


def ipk6_spec_dir() -> Path:
    return IPK6_VENV / "share" / "jupyter" / "kernels"


def ipk6_missing() -> str | None:
    """Why the ipykernel 6 kernel cannot run here, or None."""
    spec = ipk6_spec_dir() / IPK6_KERNEL / "kernel.json"
    if not spec.exists():
        return (
            f"no ipykernel 6 kernel: {spec} is missing (bash scripts/test.sh makes {IPK6_VENV.name} "
            "with ipykernel>=6.29,<7 and registers it)"
        )
    argv0 = Path(json.loads(spec.read_text())["argv"][0])
    if not argv0.exists():
        return f"the ipykernel 6 kernelspec runs {argv0}, which does not exist"
    return None


def kernel_label(name: str) -> str:
    return "ipykernel6" if name == IPK6_KERNEL else f"ipykernel{THIS_IPYKERNEL.split('.')[0]}"


KERNELS = [THIS_KERNEL, IPK6_KERNEL]


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A KernelSpecManager that knows both kernels (and no kernel installed elsewhere)."""
    from jupyter_client.kernelspec import KernelSpecManager

    root = tmp_path_factory.mktemp("kernels")
    (root / THIS_KERNEL).mkdir()
    (root / THIS_KERNEL / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"batch_magic tests ({kernel_label(THIS_KERNEL)})",
                "language": "python",
            }
        )
    )
    dirs = [str(root)]
    if ipk6_spec_dir().is_dir():
        dirs.append(str(ipk6_spec_dir()))
    return KernelSpecManager(kernel_dirs=dirs)


@pytest.fixture(params=KERNELS, ids=kernel_label)
def kernel_name(request: pytest.FixtureRequest) -> str:
    """Each kernel in turn (the ipykernel 6 one skipped, with the reason, if missing)."""
    name: str = request.param
    if name == IPK6_KERNEL:
        reason = ipk6_missing()
        if reason:
            if os.environ.get("BATCH_MAGIC_REQUIRE_IPK6") == "1":
                pytest.fail(f"BATCH_MAGIC_REQUIRE_IPK6=1 but {reason}")
            pytest.skip(reason)
    return name


def kernel_env(cwd: Path) -> dict[str, str]:
    """What the notebooks run with: no API key or base URL (they start the built-in
    simulator), the journal beside the notebook, this checkout's source first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.pop("BATCH_MAGIC_DIR", None)  # the journal goes beside the notebook (the temp copy)
    env.pop("BATCH_MAGIC_LIVE", None)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class CellRun:
    """One queued cell: what was sent, and everything the kernel said about it."""

    index: int
    source: str
    expect_error: bool
    msg_id: str
    status: str | None = None  # execute_reply's
    execution_count: int | None = None
    idle: bool = False
    texts: list[str] = field(default_factory=list)  # streams, text/plain, tracebacks
    error: str | None = None  # "ename: evalue"
    #: Widget updates the kernel sent while this cell ran: (the widget's CSS classes, value).
    widget_updates: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def finished(self) -> bool:
        return self.idle and self.status is not None


class QueuedKernel:
    """A kernel started with ``jupyter_client``; cells go in without waiting for replies."""

    def __init__(self, specs: Any, name: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        from jupyter_client.manager import KernelManager

        self.name = name
        self.cwd = cwd
        self.env = env if env is not None else kernel_env(cwd)
        self.km = KernelManager(kernel_name=name, kernel_spec_manager=specs)
        self.stderr_path = cwd / f"kernel-{os.getpid()}-{id(self)}.stderr"
        self.replies_in_order: list[str] = []  # msg_ids of execute_replies, as they came
        self.widget_classes: dict[str, tuple[str, ...]] = {}  # comm_id -> the widget's CSS classes
        self._stderr: Any = None
        self.kc: Any = None

    def __enter__(self) -> QueuedKernel:
        self._stderr = self.stderr_path.open("wb")
        self.km.start_kernel(cwd=str(self.cwd), env=self.env, stdout=self._stderr, stderr=self._stderr)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=90)
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=True)
        self._stderr.close()

    def stderr(self) -> str:
        """What the kernel process wrote to its own stdout/stderr (not to a cell)."""
        return self.stderr_path.read_text(errors="replace")

    # -- sending -------------------------------------------------------------------
    def queue(self, cells: list[tuple[str, bool]]) -> list[CellRun]:
        """Send every cell now, in order, without waiting. ``(source, expect_error)``: a
        cell expected to fail is sent with ``stop_on_error=False``, as JupyterLab does
        for cells tagged ``raises-exception``."""
        runs = []
        for i, (source, expect_error) in enumerate(cells):
            msg_id = self.kc.execute(source, stop_on_error=not expect_error, allow_stdin=False)
            runs.append(CellRun(i, source, expect_error, msg_id))
        return runs

    def collect(self, runs: list[CellRun], timeout: float) -> None:
        """Read the kernel's messages until every run has its reply and its idle status."""
        by_id = {r.msg_id: r for r in runs}
        deadline = time.monotonic() + timeout
        while not all(r.finished for r in runs):
            if time.monotonic() > deadline:
                stuck = [r for r in runs if not r.finished]
                raise AssertionError(
                    f"{len(stuck)} of {len(runs)} cells did not finish within {timeout:.0f} s "
                    f"(first: cell {stuck[0].index}: {stuck[0].source[:80]!r}, status {stuck[0].status}, "
                    f"output {stuck[0].text()[-500:]!r});\nkernel stderr:\n{self.stderr()[-2000:]}"
                )
            with contextlib.suppress(queue.Empty):
                self._route(self.kc.get_iopub_msg(timeout=0.05), by_id)
            while self.kc.shell_channel.msg_ready():
                reply = self.kc.get_shell_msg(timeout=1)
                run = by_id.get(reply["parent_header"].get("msg_id"))
                if run is not None and reply["msg_type"] == "execute_reply":
                    run.status = reply["content"]["status"]
                    self.replies_in_order.append(run.msg_id)

    def _route(self, msg: dict[str, Any], by_id: dict[str, CellRun]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        state = content.get("data", {}).get("state", {}) if kind in ("comm_open", "comm_msg") else {}
        if "_dom_classes" in state:  # which widget is which (a panel's have batch-magic-* classes)
            self.widget_classes[content["comm_id"]] = tuple(state["_dom_classes"])
        run = by_id.get(msg["parent_header"].get("msg_id"))
        if run is None:
            return
        if kind == "comm_msg" and "value" in state:
            run.widget_updates.append((self.widget_classes.get(content["comm_id"], ()), state["value"]))
        if kind == "status" and content["execution_state"] == "idle":
            run.idle = True
        elif kind == "execute_input":
            run.execution_count = content["execution_count"]
        elif kind == "stream":
            run.texts.append(content["text"])
        elif kind in ("display_data", "execute_result", "update_display_data"):
            run.texts.append(str(content.get("data", {}).get("text/plain", "")))
        elif kind == "error":
            run.error = f"{content['ename']}: {content['evalue']}"
            run.texts.append("\n".join(content["traceback"]))

    def run_all(self, cells: list[tuple[str, bool]], timeout: float) -> list[CellRun]:
        runs = self.queue(cells)
        self.collect(runs, timeout)
        return runs

    def run(self, source: str, timeout: float = 60) -> CellRun:
        """One cell, waited for; it must succeed."""
        (run,) = self.run_all([(source, False)], timeout)
        assert run.status == "ok", f"{source!r} failed: {run.error}\n{run.text()}"
        return run


def assert_ran_in_order(kernel: QueuedKernel, runs: list[CellRun], where: str) -> None:
    """Every cell ran, one after another in the order sent, and none said it was wedged."""
    for run in runs:
        expected = "error" if run.expect_error else "ok"
        assert run.status == expected, (
            f"{where}: cell {run.index} ended {run.status} ({run.error}), expected {expected}:\n"
            f"{run.source}\n---\n{run.text()[-3000:]}"
        )
    replies = [kernel.replies_in_order.index(r.msg_id) for r in runs]
    assert replies == sorted(replies), f"{where}: replies came out of order: {replies}"
    counts = [r.execution_count for r in runs]
    assert all(c is not None for c in counts) and counts == sorted(counts), f"{where}: ran out of order: {counts}"
    assert len(set(counts)) == len(counts), f"{where}: execution counts repeat: {counts}"
    for run in runs:
        for sign in BAD_SIGNS:
            assert sign not in run.text(), f"{where}: cell {run.index} printed {sign!r}:\n{run.text()[-3000:]}"
    stderr = kernel.stderr()
    for sign in BAD_SIGNS:
        assert sign not in stderr, f"{where}: the kernel's stderr says {sign!r}:\n{stderr[-3000:]}"
