"""The tutorial notebooks: committed clean, in sync with their generator, and runnable.

Each notebook is executed top to bottom with nbclient in a real ipykernel
kernel running this interpreter (the venv's Python), offline against the
built-in simulator, from a temporary copy so that its journal never lands in
the repository. A cell fails the test if it errors, unless it is tagged
``raises-exception`` (a cell that shows a refusal on purpose).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest

from _kernels import THIS_KERNEL, kernel_env
from _scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120  # seconds per cell

EXPECTED = {
    "01_quickstart.ipynb",
    "02_structured_extraction.ipynb",
    "03_reliability.ipynb",
    "04_batch_vs_realtime.ipynb",
    "05_images_and_documents.ipynb",
    "06_prompt_iteration.ipynb",
}


def _generator() -> Any:
    return load_script("make_notebooks")


# -- fast checks ----------------------------------------------------------------------------
def test_the_notebooks_are_there() -> None:
    assert set(NOTEBOOKS) >= EXPECTED


def _assert_clean(text: str, where: str) -> None:
    nb = nbformat.reads(text, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{where}: cell {i} has outputs; strip them"
        assert cell.get("execution_count") is None, f"{where}: cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_no_outputs(name: str) -> None:
    """The working copy, and the version git has staged or committed, carry no outputs."""
    path = NOTEBOOK_DIR / name
    _assert_clean(path.read_text(encoding="utf-8"), str(path))
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return
    rel = path.relative_to(ROOT).as_posix()
    for ref in (f":{rel}", f"HEAD:{rel}"):  # the index, then the last commit
        shown = subprocess.run(
            ["git", "show", ref], cwd=ROOT, capture_output=True, text=True, encoding="utf-8"
        )
        if shown.returncode == 0:  # not yet added or committed: nothing to check there
            _assert_clean(shown.stdout, f"git {ref}")


def test_notebooks_match_their_generator() -> None:
    make_notebooks = _generator()
    stale = [name for name in make_notebooks.NOTEBOOK_CELLS
             if (NOTEBOOK_DIR / name).read_text(encoding="utf-8") != make_notebooks.render(name)]
    assert not stale, f"{stale} differ from scripts/make_notebooks.py; run python scripts/make_notebooks.py"


def test_notebooks_run_offline() -> None:
    """Every notebook starts the built-in simulator and never asks for a key."""
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "%batch simulator start" in code, name
        assert "ANTHROPIC_API_KEY" not in code, name


# -- executing them -------------------------------------------------------------------------
# In the venv's own kernel (THIS_KERNEL of tests/_kernels.py), with kernel_env(): no key,
# the journal beside the notebook, this checkout's source first. test_run_all.py runs
# the same notebooks with every cell queued at once, on ipykernel 7 and 6.


class Executed:
    """A notebook after a run: its cells and their text, for content checks."""

    def __init__(self, nb: Any, cwd: Path) -> None:
        self.nb = nb
        self.cwd = cwd

    def cells(self) -> list[Any]:
        return [c for c in self.nb.cells if c.cell_type == "code"]

    @staticmethod
    def text_of(cell: Any) -> str:
        parts: list[str] = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
            else:
                parts.append(str(out.get("data", {}).get("text/plain", "")))
        return "\n".join(parts)

    def cell(self, contains: str) -> Any:
        """The first code cell whose source contains ``contains``."""
        for c in self.cells():
            if contains in c.source:
                return c
        raise AssertionError(f"no cell contains {contains!r}")

    def output(self, contains: str) -> str:
        return self.text_of(self.cell(contains))

    def all_text(self) -> str:
        return "\n".join(self.text_of(c) for c in self.cells())

    def panels(self) -> list[str]:
        """The text form of every job panel shown (the widget's text/plain)."""
        found = []
        for c in self.cells():
            for out in c.get("outputs", []):
                data = out.get("data", {})
                if "application/vnd.jupyter.widget-view+json" in data:
                    found.append(str(data.get("text/plain", "")))
        return found


def execute(name: str, tmp_path: Path, kernelspecs: Any) -> Executed:
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK_DIR / name, work / name)
    nb = nbformat.read(work / name, as_version=4)
    km = KernelManager(kernel_name=THIS_KERNEL, kernel_spec_manager=kernelspecs)
    client = NotebookClient(
        nb,
        km=km,
        kernel_name=THIS_KERNEL,
        timeout=CELL_TIMEOUT,
        allow_errors=False,  # an error fails the run, except in cells tagged raises-exception
        record_timing=False,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute(env=kernel_env(work), cwd=str(work))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name} cell {i}: {errors[0].ename}: {errors[0].evalue}"
    return Executed(nb, work)


def _common_checks(run: Executed, name: str) -> None:
    panels = run.panels()
    assert panels, f"{name}: no job panel was shown"
    assert all("SIMULATED" in p for p in panels), f"{name}: a panel does not say SIMULATED: {panels}"
    jobs = run.cwd / ".batch_magic" / "jobs"
    assert jobs.is_dir() and any(jobs.iterdir()), f"{name}: the journal is not beside the notebook"
    # A merged table of answers is always introduced as SIMULATED.
    for cell in run.cells():
        if 'print("SIMULATED answers' in cell.source:
            assert "SIMULATED answers (built-in simulator, not Claude):" in run.text_of(cell)


def _count(text: str, status: str) -> int:
    m = re.search(rf"^{status}\s+(\d+)\s*$", text, re.MULTILINE)
    assert m, f"no count of {status!r} in:\n{text}"
    return int(m.group(1))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quickstart(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("01_quickstart.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "quickstart")
    # The cell without --wait returned at once: the cell after it ran while the job was
    # still going. (Its panel's saved text may read "done": the panel refreshes it at the end.)
    assert re.search(r"(planned|submitting|in progress|queued)", run.output("%batch status"))
    assert "['team', 'team_status', 'team_error'" in run.output("print([c for c in df.columns")
    counts = run.output('df["team_status"].value_counts()')
    assert _count(counts, "succeeded") == 295 and _count(counts, "skipped") == 5
    accuracy = re.search(
        r"Accuracy against the gold 'category' column: ([\d.]+)% of 295 answered tickets \(SIMULATED answers\)",
        run.output("Accuracy against"),
    )
    assert accuracy and 20 < float(accuracy.group(1)) <= 100
    confusion = run.output("pd.crosstab")
    assert "team (SIMULATED answer)" in confusion and "gold category" in confusion
    assert "True" in run.output("%batch list")  # the simulated column
    assert "Simulator stopped." in run.output("%batch simulator stop")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_structured_extraction(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("02_structured_extraction.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "structured extraction")
    dtypes = run.output('df.filter(like="fields").dtypes')
    assert re.search(r"fields_product\s+category", dtypes)
    assert re.search(r"fields_urgent\s+boolean", dtypes)
    assert re.search(r"fields_customer\s+string", dtypes)
    assert "(SIMULATED answers)" in run.output("product_acc")
    statuses = run.output('df["parsed_status"].value_counts()')
    n_invalid = _count(statuses, "invalid")
    assert 0 < n_invalid < 100
    shown = run.output('invalid = df["parsed_status"] == "invalid"')
    assert f"{n_invalid} invalid rows (SIMULATED answers)" in shown
    assert "max_tokens" in shown and "not valid JSON" in shown
    fixed = run.output("print(df[\"parsed_status\"].value_counts().to_string())")
    assert _count(fixed, "succeeded") == 295 and _count(fixed, "invalid") == 0
    free = run.output('print(sample["info_status"]')
    assert _count(free, "succeeded") == 8, free  # --json answers are JSON objects on the simulator too
    assert "info_is_urgent" in free


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_reliability(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("03_reliability.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "reliability")
    assert "same job: True | new batches on the server: 0" in run.output("again = %batch job")
    assert "False" in run.output("del job, again, feeling_job, df")
    restarted = run.output("new_batches = batches_on_server()")
    assert "new batches since the restart: 0" in restarted
    assert _count(restarted, "succeeded") == 295
    errored = _count(run.output('failed = df["urgency_status"] == "errored"'), "errored")
    assert errored > 0, "the injected overloaded_error faults should leave errored rows"
    retry = run.output("%batch retry last df --wait")
    assert re.search(r"retrying \d+ rows of job", retry)
    after = run.output('gold = df["urgent"].map')
    assert _count(after, "succeeded") == 295 and _count(after, "errored") == 0
    assert "cancel requested" in run.output("%batch cancel last")
    canceled = run.output('print(df["summary_status"].value_counts().to_string())')
    assert _count(canceled, "canceled") > 0
    listing = run.output("%batch list")
    assert "canceled" in listing and "done" in listing


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_batch_vs_realtime(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("04_batch_vs_realtime.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "batch vs realtime")
    plot = run.cell("plt.subplots")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs), "the plot was not drawn"
    assert "Haiku 4.5 batch $" in run.output("compare.round(2)")
    # Effort as a knob: thinking turned off for labels up to high, room left for it above.
    efforts = run.output("by_effort.round(4)")
    assert "turned off" in efforts and "xhigh" in efforts and "claude-haiku-4-5" in efforts
    # A dry run without a client says where the model facts came from.
    assert "snapshot of" in run.output("plan = batch_magic.dry_run")
    assert "Pilot: 5 rows through the realtime API" in run.output("--pilot 5")
    assert "Dry run: nothing was sent." in run.output("--dry-run")
    refused = run.cell("--max-cost 0.001")
    assert "Not sent: this job could cost up to" in run.text_of(refused)
    summary = run.output("job = %batch job")
    assert re.search(r"estimated \$[\d.]+, at most \$[\d.]+; actual \$[\d.]+ \(SIMULATED token counts\)", summary)
    assert "(SIMULATED answers)" in summary


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_images_and_documents(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("05_images_and_documents.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "images and documents")
    shown = run.cell("display(*(Image(")
    assert sum("image/png" in o.get("data", {}) for o in shown.outputs) == 4, "the photos were not shown"
    dry = run.output("--dry-run")
    assert "Dry run: nothing was sent." in dry and "12 distinct image/PDF files" in dry
    assert "for images and PDFs, approximate" in dry and "[image p01_ceramic_mug.png, 128x128 px]" in dry
    assert "colour matches the gold label for 100% of the photos (SIMULATED answers)" in run.output("right = ")
    files = run.output("first_files = %batch files")
    assert "file_" in files and "p01_ceramic_mug.png" in files
    assert "same uploads as the first job: True" in run.output("second_files = %batch files")
    assert "100% of the fields match the gold values (SIMULATED answers)" in run.output("match = pd.DataFrame")
    tokens = re.search(r"input tokens: estimated ~([\d,]+) \(of which ~([\d,]+) for the PDFs\), billed ([\d,]+)",
                       run.output("job = %batch job"))
    assert tokens, run.output("job = %batch job")
    estimated, billed = (int(tokens.group(i).replace(",", "")) for i in (1, 3))
    assert 0.5 < estimated / billed < 2  # approximate, and said so
    assert "5 uploads deleted" in run.output("%batch files last --delete")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_06_prompt_iteration(tmp_path: Path, kernel_specs: Any) -> None:
    pytest.importorskip("sklearn")
    run = execute("06_prompt_iteration.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "prompt iteration")
    assert "simulated" in run.nb.cells[0].source.lower()  # the figures are said to be simulated, up front
    sample = run.output('print(df["team_status"]')
    assert _count(sample, "not_sent") == 240
    answered = _count(sample, "succeeded")
    assert 50 < answered <= 60  # the 60 sent, less any empty ticket drawn (skipped)
    assert "<Evaluation of 'team' against 'category': 300 rows" in run.output("%batch eval team --gold")
    figures = run.output("m = comparison.metrics")
    assert "SIMULATED figures (built-in simulator, not Claude):" in figures
    assert f"of {answered} rows; McNemar p = " in figures
    dry = run.output("--dry-run")
    known = re.search(r"reused: +(\d+) of the (\d+) requests answered already in the journal", dry)
    assert known and "Dry run: nothing was sent." in dry, dry
    reused, requests = int(known.group(1)), int(known.group(2))
    assert 0 < reused <= answered
    full = run.output("job = %batch job")
    assert f"{reused} answers reused" in full  # the status line says it
    assert f"reused from the sample: {reused} answers; sent: {requests - reused} new requests" in full
    final = run.output('print(df["team_v2_status"]')
    assert _count(final, "succeeded") == 295 and _count(final, "skipped") == 5
    assert "<Evaluation of 'team_v2' against 'category': 300 rows" in final


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_07_polars(tmp_path: Path, kernel_specs: Any) -> None:
    pytest.importorskip("polars")
    run = execute("07_polars.ipynb", tmp_path, kernel_specs)
    _common_checks(run, "polars")
    assert run.output("%%batch tickets --out team").count("tickets is now a new Polars frame") == 1
    types = run.output('tickets.group_by("team_status")')
    assert "'team': \"Enum(categories=['billing'" in types and "'team_input_tokens': 'Int64'" in types
    fields = run.output('name.startswith("info_")')
    for expected in ("'info_urgent': 'Boolean'", "'info_items': 'Int64'", "'info_mood': \"Enum(",
                     "'info_keywords': 'List(String)'", "'info_customer': \"Struct({'first_name': String})"):
        assert expected in fields, fields
    assert "fresh is now a new Polars frame" in run.output("%batch attach last fresh")
    assert re.search(r"rows: 295 \| first: T0300", run.output('print("rows:", fresh.height'))
    after = run.output("%batch retry last fresh")
    assert "fresh is now a new Polars frame" in after
    final = run.output('print("feeling is"')
    assert "errored" not in final and "feeling_status is an Enum" in final
