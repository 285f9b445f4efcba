"""``batch-magic demo``: the README's first command, run as a user would.

The demo must work on a fresh machine with no key and no network: it is run
in a subprocess with no Anthropic variables in its environment, from an empty
folder, and must print the merged table, a summary, the SIMULATED wording and
how to switch to the real API.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from batch_magic import cli

ROOT = Path(__file__).resolve().parent.parent


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.pop("BATCH_MAGIC_DIR", None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _command() -> list[str]:
    """The console script installed beside this Python, else the module."""
    script = Path(sys.executable).with_name("batch-magic")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "batch_magic.cli"]


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    cwd = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [*_command(), "demo", "--rows", "40", "--processing-time", "0.5"],
        cwd=cwd, env=_clean_env(), capture_output=True, text=True, encoding="utf-8", timeout=240,
    )
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert not any(cwd.iterdir()), "the demo must not leave files in the current folder"
    return proc.stdout


def test_demo_prints_the_merged_table(demo_output: str) -> None:
    lines = demo_output.splitlines()
    header = next((line for line in lines if line.lstrip().startswith("ticket_id")), None)
    assert header is not None, demo_output
    for column in ("text", "gold", "team (SIMULATED)", "status"):
        assert column in header
    start = lines.index(header)
    rows = [line for line in lines[start + 1 : start + 1 + cli.SHOWN_ROWS] if line.strip()]
    assert len(rows) == cli.SHOWN_ROWS
    teams = "billing|shipping|technical|account|returns"
    merged = [r for r in rows if re.search(rf"\b({teams})\s+({teams})\s+succeeded\s*$", r)]
    assert len(merged) >= cli.SHOWN_ROWS - 2, "rows should end with gold, answer and status"
    assert rows[0].split()[0] == "T0001"


def test_demo_prints_a_summary(demo_output: str) -> None:
    assert re.search(r"40 rows -> 39 requests in 1 batch, done in [\d.]+ s", demo_output)
    assert "1 empty row skipped" in demo_output
    assert "row statuses: 39 succeeded, 1 skipped" in demo_output
    assert re.search(r"accuracy against the gold 'category' column: \d+% of 39 answered", demo_output)
    assert re.search(r"\$[\d.]+ at the batch price, \$[\d.]+ through the realtime API", demo_output)


def test_demo_says_simulated_everywhere(demo_output: str) -> None:
    status_lines = [line for line in demo_output.splitlines() if "batches ·" in line]
    assert status_lines, demo_output
    assert all(line.rstrip().endswith("SIMULATED") for line in status_lines)
    assert "(SIMULATED answers)" in demo_output
    assert "they are SIMULATED, not Claude's" in demo_output


def test_demo_says_how_to_use_the_real_api(demo_output: str) -> None:
    assert "export ANTHROPIC_API_KEY=" in demo_output
    assert "%load_ext batch_magic" in demo_output
    assert "%%batch df --out team --labels billing,shipping,technical,account,returns" in demo_output


def test_the_real_api_help_gives_the_cell_magic_its_own_cell() -> None:
    """Copied as one block, '%load_ext' and '%%batch' would fail: a cell magic must start its cell.
    So the two are separate code blocks, with words between them saying so."""
    lines = cli.REAL_API_HELP.splitlines()
    load = next(i for i, line in enumerate(lines) if line.strip().startswith("%load_ext batch_magic"))
    cell = next(i for i, line in enumerate(lines) if line.strip().startswith("%%batch df"))
    between = [line for line in lines[load + 1 : cell] if line.strip() and not line.startswith(" ")]
    assert load < cell and between, "a sentence must separate the two cells"
    assert "first line of its cell" in " ".join(between)


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--rows", "0"])
    assert exc.value.code == 2
    assert "--rows" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "--bogus"])
    with pytest.raises(SystemExit):
        cli.main([])


def test_demo_template_is_the_quickstart_cell() -> None:
    """The demo runs the quickstart's job, so what it prints matches the notebook."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    assert cli.DEMO_TEMPLATE == make_notebooks.TRIAGE


# -- a fresh machine: what `pip install .` brings must cover every import ------------------
def _third_party_imports() -> set[str]:
    """Top-level modules the package imports that are not its own or the standard library's."""
    found: set[str] = set()
    for path in (ROOT / "src" / "batch_magic").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.update(name.split(".")[0] for name in names)
    return {m for m in found if m not in sys.stdlib_module_names and m != "batch_magic"}


#: Imports that are optional at run time (guarded by try/except ImportError) or
#: installed by a declared dependency under another name.
OPTIONAL_OR_TRANSITIVE = {
    "jsonschema",  # optional validator; a built-in one is used without it
    "tomli",  # Python 3.10 only, guarded
    "pydantic",  # only when the user passes a pydantic model (they have it then)
    "IPython",  # the distribution is "ipython"
    "traitlets",  # comes with ipython
    "PIL",  # the simulator reads image colours with Pillow when it is there, guarded
    "sklearn",  # the eval extra: evaluate() and compare() say how to install it
    "scipy",  # the eval extra
    "matplotlib",  # the confusion matrix as a heatmap when it is there, else a table
    "polars",  # the polars extra: imported only when a Polars frame is passed (frames.py)
}


def test_runtime_imports_are_declared_dependencies() -> None:
    """A fresh `pip install .` must bring everything `batch-magic demo` imports."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].strip().lower().replace("-", "_")
        for dep in project["dependencies"]
    }
    missing = sorted(
        m for m in _third_party_imports()
        if m.lower() not in declared and m not in OPTIONAL_OR_TRANSITIVE
    )
    assert not missing, f"imported by src/batch_magic but not in [project].dependencies: {missing}"
