"""JupyterLab's Run All, without the browser: every cell queued at once.

Run All sends every execute request without waiting for replies; on
ipykernel 7 each becomes a task on the kernel's asyncio loop, waiting its
turn. A blocking wait that re-entered that loop stepped those tasks from
inside a running cell: "cannot enter context ... already entered", "Task was
destroyed but it is pending", and every later cell stuck. nbclient (and
tests/test_notebooks.py) send one cell at a time and never saw it.

Here, through a plain ``jupyter_client``, on the ipykernel 7 kernel and the
ipykernel 6 one (see tests/_kernels.py):

- every notebook in notebooks/, all its cells queued at once, REPEATS times,
  each time in a fresh kernel and folder: every cell ends ok (cells tagged
  ``raises-exception`` end in their error and, as in JupyterLab, do not stop
  the rest), in order, within the timeout, and nothing says a task was
  destroyed or a context already entered;
- every notebook in notebooks/ in sequence, twice, in ONE folder (how
  ``notebooks/`` is used: they share its journal and the simulator's kept
  batches, and the second pass re-attaches to the first pass's jobs), each
  notebook in a fresh kernel, on ipykernel 7 only (it is the longest test);
- the smallest reproduction (``%%batch``, ``%batch wait``, ``print``) queued
  at once, ROUNDS times in one kernel, waiting in turn with ``%batch wait``,
  ``--wait``, ``job.wait()`` and ``submit(..., wait=True)``: the print always
  runs, after the columns are merged.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest

from _kernels import (
    IPK6_KERNEL,
    THIS_KERNEL,
    QueuedKernel,
    assert_ran_in_order,
    kernel_label,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
#: Run All per notebook and kernel, side by side. Before the fix a notebook with a
#: blocking wait wedged 3 runs of 3 on ipykernel 7.
REPEATS = 3
RUN_TIMEOUT = 240  # seconds for one Run All of one notebook (about 20 s normally)
#: Rounds of the three-cell reproduction (it failed about one round in three), four
#: of each way to wait.
ROUNDS = 16


def notebook_cells(path: Path) -> list[tuple[str, bool]]:
    """The notebook's code cells, each with whether it is tagged to raise."""
    nb = nbformat.read(path, as_version=4)
    return [
        (c.source, "raises-exception" in c.metadata.get("tags", []))
        for c in nb.cells
        if c.cell_type == "code"
    ]


def check_kernel_version(k: QueuedKernel, name: str) -> None:
    """The kernel really is the ipykernel major it is meant to be."""
    run = k.run("import ipykernel; print('IPYKERNEL', ipykernel.__version__)")
    major = run.text().split("IPYKERNEL", 1)[1].split()[0].split(".")[0]
    assert f"ipykernel{major}" == kernel_label(name), run.text()
    if name == IPK6_KERNEL:
        assert major == "6"


def run_all_once(notebook: str, kernel_name: str, specs: Any, work: Path, where: str) -> None:
    """One Run All of ``notebook`` in a fresh kernel, from a copy of it in ``work``."""
    work.mkdir()
    shutil.copy(NOTEBOOK_DIR / notebook, work / notebook)
    with QueuedKernel(specs, kernel_name, work) as k:
        check_kernel_version(k, kernel_name)
        runs = k.run_all(notebook_cells(NOTEBOOK_DIR / notebook), timeout=RUN_TIMEOUT)
        assert_ran_in_order(k, runs, where)
    jobs = work / ".batch_magic" / "jobs"
    assert jobs.is_dir() and any(jobs.iterdir()), f"{where}: no job in the journal"


@pytest.mark.timeout(RUN_TIMEOUT + 120)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_run_all_finishes_every_cell(notebook: str, kernel_name: str, kernel_specs: Any, tmp_path: Path) -> None:
    cells = notebook_cells(NOTEBOOK_DIR / notebook)
    assert any("wait" in source for source, _ in cells), f"{notebook} has no blocking wait to test"
    # The runs go side by side, each in its own kernel and folder (a notebook mostly
    # waits on its simulator's processing time, so this costs little more than one run).
    label = kernel_label(kernel_name)
    with ThreadPoolExecutor(REPEATS) as pool:
        futures = [
            pool.submit(
                run_all_once, notebook, kernel_name, kernel_specs, tmp_path / f"run{i}",
                f"{notebook}, Run All {i} of {REPEATS} on {label}",
            )
            for i in range(1, REPEATS + 1)
        ]
        for future in futures:
            future.result()


#: Passes over every notebook in the shared folder.
SHARED_PASSES = 2


@pytest.mark.timeout(SHARED_PASSES * RUN_TIMEOUT * 3)
def test_every_notebook_in_one_folder_twice(kernel_specs: Any, tmp_path: Path) -> None:
    """Run All on 01, 02, ... (every notebook there is), then all of them again, in one
    folder: a tutorial asserts facts about its own jobs, never about the whole server or
    journal, which the other notebooks share."""
    for notebook in NOTEBOOKS:
        shutil.copy(NOTEBOOK_DIR / notebook, tmp_path / notebook)
    journal = tmp_path / ".batch_magic"
    made: list[tuple[set[str], set[str]]] = []  # (job ids, batch ids) after each pass
    for n in range(1, SHARED_PASSES + 1):
        for notebook in NOTEBOOKS:
            where = f"{notebook}, pass {n} of {SHARED_PASSES} over {len(NOTEBOOKS)} notebooks in one folder"
            with QueuedKernel(kernel_specs, THIS_KERNEL, tmp_path) as k:
                runs = k.run_all(notebook_cells(tmp_path / notebook), timeout=RUN_TIMEOUT)
                assert_ran_in_order(k, runs, where)
        made.append((
            {p.name for p in (journal / "jobs").iterdir() if p.is_dir()},
            {p.stem for p in (journal / "simulator" / "batches").glob("*.json")},
        ))
    first_jobs, first_batches = made[0]
    assert len(first_jobs) >= len(NOTEBOOKS), f"one journal beside the notebooks holds their jobs: {first_jobs}"
    # Every later pass re-attached to the first pass's jobs: no new job, no batch sent again.
    for jobs, batches in made[1:]:
        assert jobs == first_jobs, f"new jobs on a later pass: {sorted(jobs - first_jobs)}"
        assert batches == first_batches, f"batches sent again on a later pass: {sorted(batches - first_batches)}"


REVIEWS = ["great product, works well", "awful, broke on day one", "fine I guess", "love it"]
PROMPT = "One word for this review: {{ review }}"


def three_cells(i: int) -> list[tuple[str, bool]]:
    """Submit, wait, print: round ``i`` waits in one of the four blocking ways."""
    out = f"a{i}"
    check = (f"print('after', {i}, list(df['{out}_status'].unique()))", False)
    way = i % 4
    if way == 0:  # %batch wait
        return [(f"%%batch df --out {out}\n{PROMPT}", False), ("%batch wait", False), check]
    if way == 1:  # --wait
        return [(f"%%batch df --out {out} --wait\n{PROMPT}", False), ("%batch status", False), check]
    if way == 2:  # job.wait() in a cell
        return [(f"%%batch df --out {out}\n{PROMPT}", False), ("job = %batch job\n_ = job.wait()", False), check]
    # submit(..., wait=True) in a cell
    return [
        (f"_ = bm.submit(df, {PROMPT!r}, out={out!r}, client=sim_client, wait=True)", False),
        ("%batch list", False),
        check,
    ]


@pytest.mark.timeout(ROUNDS * 30 + 90)
def test_submit_wait_print_queued_at_once(kernel_name: str, kernel_specs: Any, tmp_path: Path) -> None:
    """The reproduction, in the four ways to block a cell on a job: %batch wait,
    --wait, job.wait() and submit(wait=True)."""
    with QueuedKernel(kernel_specs, kernel_name, tmp_path) as k:
        check_kernel_version(k, kernel_name)
        k.run(
            "%load_ext batch_magic\n"
            "%batch simulator start --processing-time 0.3\n"
            "import pandas as pd\n"
            "import batch_magic as bm\n"
            "sim_client = get_ipython().magics_manager.registry['BatchMagic'].simulator.client()\n"
            f"df = pd.DataFrame({{'review': {REVIEWS!r}}})"
        )
        for i in range(ROUNDS):
            runs = k.run_all(three_cells(i), timeout=60)
            assert_ran_in_order(k, runs, f"round {i + 1} of {ROUNDS} on {kernel_label(kernel_name)}")
            # The print ran after the wait, which returned once the columns were merged.
            assert runs[2].text().strip() == f"after {i} ['succeeded']", runs[2].text()
