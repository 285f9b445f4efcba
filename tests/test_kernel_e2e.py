"""End to end in a real ipykernel kernel, driven by nbclient, against the simulator.

The kernel is started from a kernelspec written for this interpreter (so it
runs the venv's Python whatever kernels are installed), in a temporary
folder, with ``ANTHROPIC_BASE_URL`` pointing at a simulator served by this
test process and the journal in a folder shared between kernels.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from batch_magic.simulator import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KERNEL = "batch-magic-test"
PROCESSING = 5.0  # seconds the simulator takes per batch
ROWS = ["great product, works well", "awful, broke on day one", "fine I guess", "love it"]


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec whose argv is this interpreter (the venv's Python)."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "batch_magic tests",
                "language": "python",
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(root)])


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(processing_time=PROCESSING, cancel_delay=0.5) as s:
        yield s


class Kernel:
    """One kernel and a notebook we append cells to and run one at a time."""

    def __init__(self, specs: KernelSpecManager, cwd: Path, env: dict[str, str]) -> None:
        self.nb = nbformat.v4.new_notebook()
        self.nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
        self.km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
        self.replies: dict[int, dict[str, Any]] = {}
        self.client = NotebookClient(
            self.nb, km=self.km, timeout=60, kernel_name=KERNEL, allow_errors=False,
            on_cell_executed=self._on_executed,
        )
        self.cwd = cwd
        self.env = env

    def _on_executed(self, cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        self.replies[cell_index] = execute_reply

    def __enter__(self) -> Kernel:
        self._ctx = self.client.setup_kernel(env=self.env, cwd=str(self.cwd), cleanup_kc=True)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)

    def run(self, source: str) -> tuple[Any, float]:
        """Run one cell; return it (with outputs) and how long it took."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        index = len(self.nb.cells) - 1
        started = time.monotonic()
        self.client.execute_cell(cell, index)
        return cell, time.monotonic() - started

    def text(self, cell: Any) -> str:
        """Every text the cell showed: streams, text/plain and text/html."""
        parts = []
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                for mime in ("text/plain", "text/html"):
                    if mime in out.data:
                        parts.append(out.data[mime])
            elif out.output_type == "error":
                parts.append("\n".join(out.traceback))
        return "\n".join(parts)

    def page(self, index: int) -> str:
        """What the kernel sent to the pager (``?`` help) for cell ``index``."""
        payload = self.replies[index]["content"].get("payload", [])
        return "\n".join(p.get("data", {}).get("text/plain", "") for p in payload if p.get("source") == "page")


def kernel_env(sim: Simulator, journal: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(sim.env("sk-sim-test"))
    env["BATCH_MAGIC_DIR"] = str(journal)
    env.pop("BATCH_MAGIC_LIVE", None)
    return env


def frame_cell() -> str:
    return f"import pandas as pd\ndf = pd.DataFrame({{'review': {ROWS!r}}})\nlen(df)"


WAIT_CELL = """\
import asyncio
job = %batch job
for _ in range(300):
    if job.done:
        break
    await asyncio.sleep(0.1)   # the kernel's loop runs: the job's task polls meanwhile
print("STATE", job.status.state, job.done, job.status.error)
"""


def test_notebook_submits_returns_at_once_and_merges_later(
    kernelspecs: KernelSpecManager, sim: Simulator, tmp_path: Path
) -> None:
    with Kernel(kernelspecs, tmp_path, kernel_env(sim, tmp_path / "journal")) as k:
        k.run("%load_ext batch_magic")
        cell, _ = k.run(frame_cell())
        assert "4" in k.text(cell)
        # Import the SDK first: the next cell is timed for the submit, not a cold import.
        k.run("import anthropic, batch_magic.api")

        cell, took = k.run("%%batch df --out x\nWhat is this review about? {{ review }}")
        assert took < PROCESSING / 2, f"the submitting cell took {took:.1f} s"
        widget = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widget, cell.outputs  # the panel, as a widget
        assert "batch " in widget[0].data["text/plain"] and "SIMULATED" in widget[0].data["text/plain"]

        cell, _ = k.run(
            "job = %batch job\nprint('STATE', job.status.state, job.done, 'x' in df.columns)\n%batch status"
        )
        out = k.text(cell)
        state = out.split("STATE ", 1)[1].split()
        assert state[0] in ("planned", "submitting", "in_progress") and state[1:3] == ["False", "False"], out
        assert "SIMULATED" in out  # the %batch status line

        cell, _ = k.run(WAIT_CELL)
        assert "STATE done True" in k.text(cell), k.text(cell)
        cell, _ = k.run("print(df['x_status'].tolist(), bool(df['x'].notna().all()))")
        assert k.text(cell).strip() == "['succeeded', 'succeeded', 'succeeded', 'succeeded'] True"

        cell, _ = k.run("%batch list")
        job_id = json.loads(k.text(k.run("print(__import__('json').dumps(job.id))")[0]))
        # The job's short id: a prefix of its id that attach takes.
        assert any(job_id.startswith(word) and len(word) >= 13 for word in k.text(cell).split()), k.text(cell)

        k.run("%%batch?")
        help_text = k.page(len(k.nb.cells) - 1)
        for option in ("--out", "--labels", "--wait", "--dry-run", "%batch attach", "%batch retry"):
            assert option in help_text, option

        # --wait blocks the cell until merged (the kernel's loop runs re-entrantly).
        cell, took = k.run("%%batch df.review --out y --wait\nOne word for this review:")
        assert took >= PROCESSING * 0.8, f"--wait returned after {took:.1f} s"
        cell, _ = k.run("print(df['y_status'].tolist())")
        assert k.text(cell).strip() == "['succeeded', 'succeeded', 'succeeded', 'succeeded']"

        # The panel's widget state tells the same story.
        cell, _ = k.run(
            "p = get_ipython().magics_manager.registry['BatchMagic'].views[job.id]\n"
            "print('PANEL', p.state.value, p.cancel_button.disabled, p.bar.bar_style)"
        )
        assert "PANEL <b>done</b> True success" in k.text(cell)
    creates = [r for r in sim.requests if r.endpoint == "create"]
    assert len(creates) == 2


def test_job_of_a_dead_kernel_is_reattached_in_a_new_one(
    kernelspecs: KernelSpecManager, sim: Simulator, tmp_path: Path
) -> None:
    env = kernel_env(sim, tmp_path / "journal")
    with Kernel(kernelspecs, tmp_path, env) as k:
        k.run("%load_ext batch_magic")
        k.run(frame_cell())
        k.run("%%batch df --out x\nSummarise: {{ review }}")
        # Wait until the batch exists on the server, then let the kernel go.
        cell, _ = k.run(
            "import asyncio\njob = %batch job\n"
            "for _ in range(100):\n"
            "    if job.status.batches_submitted:\n"
            "        break\n"
            "    await asyncio.sleep(0.1)\n"
            "print('JOB', job.id, job.status.state, job.status.error)"
        )
        job_id, state = k.text(cell).split("JOB ", 1)[1].split()[:2]
        assert state == "in_progress", k.text(cell)
    assert len([r for r in sim.requests if r.endpoint == "create"]) == 1

    with Kernel(kernelspecs, tmp_path, env) as k:
        k.run("%load_ext batch_magic")
        k.run(frame_cell())
        cell, _ = k.run("%batch list")
        # The job's short id: a prefix of its id that attach takes.
        assert any(job_id.startswith(word) and len(word) >= 13 for word in k.text(cell).split()), k.text(cell)
        k.run(f"%batch attach {job_id} df")
        cell, _ = k.run(WAIT_CELL)
        assert "STATE done True" in k.text(cell), k.text(cell)
        cell, _ = k.run("print(df['x_status'].tolist(), bool(df['x'].notna().all()))")
        assert k.text(cell).strip() == "['succeeded', 'succeeded', 'succeeded', 'succeeded'] True"
    # Picked up, not paid for again.
    assert len([r for r in sim.requests if r.endpoint == "create"]) == 1


def test_cancel_button_click_reaches_an_idle_kernel(
    kernelspecs: KernelSpecManager, sim: Simulator, tmp_path: Path
) -> None:
    """The click a browser sends (a comm message) cancels the job while no cell runs."""
    sim.configure(processing_time=120.0)
    with Kernel(kernelspecs, tmp_path, kernel_env(sim, tmp_path / "journal")) as k:
        k.run("%load_ext batch_magic")
        k.run(frame_cell())
        k.run("%%batch df --out x\n{{ review }}")
        cell, _ = k.run(
            "import asyncio\njob = %batch job\n"
            "for _ in range(100):\n"
            "    if job.status.state == 'in_progress':\n"
            "        break\n"
            "    await asyncio.sleep(0.1)\n"
            "p = get_ipython().magics_manager.registry['BatchMagic'].views[job.id]\n"
            "print('BUTTON', p.cancel_button.model_id, job.status.state, job.status.error)"
        )
        model_id, state = k.text(cell).split("BUTTON ", 1)[1].split()[:2]
        assert state == "in_progress", k.text(cell)
        # Elapsed ticks while nothing changes in the job (a clock task on the kernel's loop).
        cell, _ = k.run("before = p.details.value\nawait asyncio.sleep(2.2)\nprint('TICKED', p.details.value != before)")
        assert "TICKED True" in k.text(cell)
        # What ipywidgets' front end sends for a click, on the shell channel, kernel idle.
        kc = k.client.kc
        kc.shell_channel.send(
            kc.session.msg(
                "comm_msg",
                {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}},
            )
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(r.endpoint == "cancel" for r in sim.requests):
                break
            time.sleep(0.1)
        assert any(r.endpoint == "cancel" for r in sim.requests), "the click did not cancel while idle"
        cell, _ = k.run(WAIT_CELL)
        assert "STATE canceled True" in k.text(cell), k.text(cell)
        cell, _ = k.run(
            "print('PANEL', p.state.value, p.cancel_button.disabled, p.bar.bar_style, "
            "df['x_status'].tolist())"
        )
        assert "PANEL <b>canceled</b> True warning ['canceled', 'canceled', 'canceled', 'canceled']" in k.text(cell)
