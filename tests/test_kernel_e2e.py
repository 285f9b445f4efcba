"""End to end in a real ipykernel kernel, against the simulator, on ipykernel 7 and 6.

Each test runs against both kernels of tests/_kernels.py (this venv's
ipykernel 7, and ipykernel 6 from .venv-ipk6), started in a temporary folder
with ``ANTHROPIC_BASE_URL`` pointing at a simulator served by this test
process and the journal in a folder shared between kernels. Most tests drive
the kernel through nbclient, one cell at a time; the ones about blocking waits
and Interrupt use a plain ``jupyter_client`` (``QueuedKernel``), which can
send a cell without waiting for it and interrupt the kernel meanwhile.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from _kernels import QueuedKernel, assert_ran_in_order, kernel_label
from batch_magic.simulator import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PROCESSING = 5.0  # seconds the simulator takes per batch
ROWS = ["great product, works well", "awful, broke on day one", "fine I guess", "love it"]


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    """The session simulator (conftest), its batches taking ``PROCESSING`` s."""
    simulator.configure(processing_time=PROCESSING, cancel_delay=0.5)
    return simulator


class Kernel:
    """One kernel and a notebook we append cells to and run one at a time."""

    def __init__(self, specs: KernelSpecManager, name: str, cwd: Path, env: dict[str, str]) -> None:
        self.nb = nbformat.v4.new_notebook()
        self.nb.metadata["kernelspec"] = {"name": name, "display_name": name, "language": "python"}
        self.km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=specs)
        self.replies: dict[int, dict[str, Any]] = {}
        self.client = NotebookClient(
            self.nb, km=self.km, timeout=60, kernel_name=name, allow_errors=False,
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
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    with Kernel(kernel_specs, kernel_name, tmp_path, kernel_env(sim, tmp_path / "journal")) as k:
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

        # --wait blocks the cell until merged (the driver runs on its own thread meanwhile).
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
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    env = kernel_env(sim, tmp_path / "journal")
    with Kernel(kernel_specs, kernel_name, tmp_path, env) as k:
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

    with Kernel(kernel_specs, kernel_name, tmp_path, env) as k:
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
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    """The click a browser sends (a comm message) cancels the job while no cell runs."""
    sim.configure(processing_time=120.0)
    with Kernel(kernel_specs, kernel_name, tmp_path, kernel_env(sim, tmp_path / "journal")) as k:
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


# -- blocking waits, errors, observers and Interrupt, through a plain jupyter_client ------------
SETUP = (
    "%load_ext batch_magic\n"
    "import asyncio, threading\n"
    "import pandas as pd\n"
    "import batch_magic as bm\n"
    f"df = pd.DataFrame({{'review': {ROWS!r}}})\n"
    "HOME = threading.get_ident()"
)


def queued_kernel(specs: KernelSpecManager, name: str, sim: Simulator, tmp_path: Path) -> QueuedKernel:
    return QueuedKernel(specs, name, tmp_path, kernel_env(sim, tmp_path / "journal"))


def line_after(text: str, tag: str) -> str:
    """The rest of the line that starts with ``tag`` (a marker the cell printed)."""
    for line in text.splitlines():
        if line.startswith(tag):
            return line[len(tag):].strip()
    raise AssertionError(f"no line starting {tag!r} in:\n{text}")


def test_wait_and_cancel_of_an_unstarted_job_in_a_cell(
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    """submit(..., start=False) then wait() or cancel() in a cell: they start the job
    themselves, on a thread of its own (no asyncio.run in the kernel's running loop)."""
    with queued_kernel(kernel_specs, kernel_name, sim, tmp_path) as k:
        k.run(SETUP)
        run = k.run(
            "job = bm.submit(df, 'One word: {{ review }}', out='w', start=False)\n"
            "print('BEFORE', job.status.state, job.done)\n"
            "out = job.wait(60)\n"
            "print('WAITED', job.status.state, out is df, df['w_status'].tolist())",
            timeout=90,
        )
        assert line_after(run.text(), "BEFORE") == "planned False"
        assert line_after(run.text(), "WAITED") == "done True " + str(["succeeded"] * len(ROWS))

        run = k.run(
            "job2 = bm.submit(df, 'Two words: {{ review }}', out='c', start=False)\n"
            "job2.cancel()\n"
            "print('CANCEL RETURNED', job2.done)\n"
            "job2.wait(60)\n"
            "print('CANCELED', job2.status.state, df['c_status'].tolist())",
            timeout=90,
        )
        assert line_after(run.text(), "CANCELED") == "canceled " + str(["canceled"] * len(ROWS))
        assert_ran_in_order(k, [run], kernel_label(kernel_name))
    # The first job's batch only: the canceled one never reached the API.
    assert len([r for r in sim.requests if r.endpoint == "create"]) == 1


def test_wait_raises_the_error_the_driver_met(
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    """Our errors come out of wait() as they were raised (not re-wrapped as
    "Job ... failed"), others as themselves; nothing is raised where nobody hears it."""
    sim.add_fault("create", 400, times=1, message="max_tokens: too large for this test")
    with queued_kernel(kernel_specs, kernel_name, sim, tmp_path) as k:
        k.run(SETUP)
        ours = k.run(
            "job = bm.submit(df, 'Refused: {{ review }}', out='r')\n"
            "try:\n"
            "    job.wait(60)\n"
            "except Exception as exc:\n"
            "    print('RAISED', type(exc).__module__, type(exc).__name__, '|', exc)\n"
            "print('STATE', job.status.state, job.done)",
            timeout=90,
        )
        raised = line_after(ours.text(), "RAISED")
        assert raised.startswith("batch_magic.errors APIError | Creating a batch was refused"), raised
        assert "too large for this test" in raised
        assert line_after(ours.text(), "STATE") == "failed True"

        foreign = k.run(
            "import shutil\n"
            "job = bm.submit(df, 'Gone: {{ review }}', out='g', start=False)\n"
            "shutil.rmtree(job.journal.job_dir(job.id))  # the journal of the job vanishes\n"
            "try:\n"
            "    job.wait(60)\n"
            "except Exception as exc:\n"
            "    print('RAISED', type(exc).__name__, '|', exc)\n"
            "print('STATE', job.status.state, job.done)",
            timeout=90,
        )
        assert line_after(foreign.text(), "RAISED").startswith("FileNotFoundError |")
        assert line_after(foreign.text(), "STATE") == "failed True"
        later = k.run("import time; time.sleep(0.5); print('AFTER')")
        assert_ran_in_order(k, [ours, foreign, later], kernel_label(kernel_name))


def test_observers_are_called_once_per_snapshot_on_the_kernel_thread(
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    sim.configure(processing_time=2.0)
    with queued_kernel(kernel_specs, kernel_name, sim, tmp_path) as k:
        k.run(SETUP)
        # During a blocking wait: the waiting cell delivers; print shows each snapshot once.
        printed = k.run(
            "seen, threads = [], set()\n"
            "def watch(s):\n"
            "    seen.append(s)\n"
            "    threads.add(threading.get_ident())\n"
            "job = bm.submit(df, 'Observed: {{ review }}', out='o', start=False)\n"
            "job.observe(print)\n"
            "job.observe(watch)\n"
            "job.wait(60)",
            timeout=90,
        )
        # print(status) is one line: "<job id>: <state> · <batches> · ...".
        lines = [line for line in printed.text().splitlines() if re.match(r"\d{8}-\d{6}-\w+: ", line)]
        assert len(lines) >= 3, printed.text()
        assert all(a != b for a, b in itertools.pairwise(lines)), "a snapshot was printed twice in a row"
        assert [line for line in lines if re.match(r"\S+: done · ", line)] == lines[-1:], lines
        # Between cells: the kernel's loop delivers, on the kernel's thread too.
        k.run(
            "seen2, threads2 = [], set()\n"
            "def watch2(s):\n"
            "    seen2.append(s)\n"
            "    threads2.add(threading.get_ident())\n"
            "job2 = bm.submit(df, 'Observed later: {{ review }}', out='o2')\n"
            "job2.observe(watch2)"
        )
        k.run("while not job2.done:\n    await asyncio.sleep(0.1)\nawait asyncio.sleep(0.5)", timeout=60)
        run = k.run(
            "for name, s, t in (('WAITED', seen, threads), ('LOOP', seen2, threads2)):\n"
            "    repeats = sum(a == b for a, b in zip(s, s[1:]))\n"
            "    print(name, len(s) > 2, repeats, [str(x.state) for x in s if x.done], t == {HOME})"
        )
        assert line_after(run.text(), "WAITED") == "True 0 ['done'] True"
        assert line_after(run.text(), "LOOP") == "True 0 ['done'] True"
        assert_ran_in_order(k, [printed, run], kernel_label(kernel_name))


def test_the_panel_updates_during_a_blocking_wait(
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    """--wait holds the cell; the panel's widgets still change (state and elapsed clock)."""
    with queued_kernel(kernel_specs, kernel_name, sim, tmp_path) as k:
        k.run(SETUP)
        run = k.run("%%batch df --out p --wait\nOne word for this review: {{ review }}", timeout=90)
        states = [v for classes, v in run.widget_updates if "batch-magic-state" in classes]
        assert "<b>in progress</b>" in states and states[-1] == "<b>done</b>", states
        elapsed = {
            m.group(1)
            for classes, v in run.widget_updates
            if "batch-magic-details" in classes and v.startswith("in progress")
            for m in [re.search(r"(\d+:\d\d) elapsed", v)]
            if m
        }
        assert len(elapsed) >= 3, f"the elapsed clock did not tick during the {PROCESSING:.0f} s wait: {elapsed}"
        done = k.run("print('COLUMN', df['p_status'].tolist())")
        assert line_after(done.text(), "COLUMN") == str(["succeeded"] * len(ROWS))
        assert_ran_in_order(k, [run, done], kernel_label(kernel_name))


def test_interrupt_stops_the_wait_and_the_job_goes_on(
    kernel_specs: KernelSpecManager, kernel_name: str, sim: Simulator, tmp_path: Path
) -> None:
    sim.configure(processing_time=8.0)
    with queued_kernel(kernel_specs, kernel_name, sim, tmp_path) as k:
        k.run(SETUP)
        k.run("%%batch df --out slow\nSummarise: {{ review }}")
        (waiting,) = k.queue([("%batch wait", False)])
        time.sleep(2.0)
        k.km.interrupt_kernel()
        k.collect([waiting], timeout=30)
        assert waiting.status == "error" and (waiting.error or "").startswith("KeyboardInterrupt"), waiting.text()
        assert "Stopped waiting for job" in (waiting.error or "") and "the job goes on" in (waiting.error or "")

        after = k.run("job = %batch job\nprint('AFTER', job.done, job.status.state)")
        assert line_after(after.text(), "AFTER") in ("False in_progress", "False submitting")
        # The panel keeps following the job between cells; a new wait sees it through.
        finished = k.run("%batch wait\nprint('DONE', job.status.state, df['slow_status'].tolist())", timeout=60)
        assert line_after(finished.text(), "DONE") == "done " + str(["succeeded"] * len(ROWS))
        panel = k.run(
            "p = get_ipython().magics_manager.registry['BatchMagic'].views[job.id]\n"
            "print('PANEL', p.state.value, p.bar.bar_style)"
        )
        assert line_after(panel.text(), "PANEL") == "<b>done</b> success"
        assert_ran_in_order(k, [after, finished, panel], kernel_label(kernel_name))
    assert len([r for r in sim.requests if r.endpoint == "create"]) == 1
