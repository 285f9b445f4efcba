"""The README stays true: its options block is the magic's own help, its set-up
commands are the two the project promises, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from _scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/batch-magic demo"
TEST_COMMAND = "bash scripts/test.sh"


def _options_table() -> Any:
    return load_script("options_table")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_options_block_matches_the_magic_help() -> None:
    options_table = _options_table()
    text = _readme()
    assert text.count(options_table.START) == 1 and text.count(options_table.END) == 1
    assert options_table.current_block(text) == options_table.generate(), (
        "README.md's options block is out of date: run python scripts/options_table.py --write"
    )


def test_options_block_lists_every_flag() -> None:
    """Every flag of %%batch, every line command and every config trait is in the README."""
    from batch_magic.magics import SUBCOMMANDS, BatchMagic

    block = _options_table().current_block(_readme())
    for action in BatchMagic.batch.parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in block, flag
    for command in SUBCOMMANDS:
        if command == "help":  # %batch help prints this very list
            continue
        assert f"%batch {command}" in block, command
    for trait in BatchMagic.class_traits(config=True):
        assert f"`{trait}`" in block, trait


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    options_table = _options_table()
    stale = tmp_path / "README.md"
    stale.write_text(_readme().replace("| `--wait` (`-w`) |", "| `--wait` |"), encoding="utf-8")
    assert options_table.main(["--check", "--readme", str(stale)]) == 1
    assert options_table.main(["--write", "--readme", str(stale)]) == 0
    assert options_table.main(["--check", "--readme", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == _readme()


def test_the_two_setup_commands_appear_verbatim() -> None:
    text = _readme()
    assert DEMO_COMMAND in text
    assert TEST_COMMAND in text
    # The demo command comes first, as the project promises.
    assert text.index(DEMO_COMMAND) < text.index(TEST_COMMAND)
    # The CI entry point runs the second command.
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_exactly_two_setup_commands() -> None:
    """The Set up section has two commands and no more."""
    text = _readme()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|console|sh)?\n(.*?)```", section, re.DOTALL)
    assert [c.strip() for c in commands] == [DEMO_COMMAND, TEST_COMMAND]


def test_readme_covers_what_users_need() -> None:
    text = _readme()
    for heading in ("## In 30 seconds", "## Set up", "## Options", "## When the kernel dies",
                    "## Cost notes", "## The Python API"):
        assert heading in text, heading
    assert "docs/panel.png" in text
    for phrase in ("%batch attach", "--max-cost", "--dry-run", "--pilot", "half", "Prompt caching"):
        assert phrase in text, phrase


def test_relative_links_exist() -> None:
    text = _readme()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]
    assert local, "the README links nothing local?"
    missing = [t for t in local if t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"



def _python_blocks(heading: str) -> list[str]:
    section = _readme().split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def _notebook_snippets() -> list[str]:
    """Every notebook snippet of the README, in order: its cells as a user pastes them.
    (The Python API section is a script; test_the_python_api_example_runs runs it.)"""
    return _python_blocks("## In 30 seconds") + _python_blocks("## Images and documents")


def test_the_30_second_example_runs(ip: Any) -> None:
    """The example's cells, run one by one as written in a real IPython shell, offline."""
    cells = _python_blocks("## In 30 seconds")
    assert len(cells) == 3, cells
    setup, batch_cell, look = cells
    try:
        ip.run_cell(setup)
        ip.run_cell(batch_cell)  # returns at once
        shown = ip.run_cell(look).result
    finally:
        ip.run_cell("%batch simulator stop")
    assert list(shown.columns) == ["text", "team", "team_status"]
    assert set(shown["team_status"]) <= {"succeeded", "skipped"}
    assert shown["team"].notna().any()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_notebook_snippet_runs_under_run_all(kernel_specs: Any, tmp_path: Path) -> None:
    """The README's notebook snippets, queued at once in a real ipykernel 7 kernel as
    JupyterLab's Run All does (tests/_kernels.py): every cell ends ok, in order; then a
    last cell checks what the snippets made."""
    from _kernels import THIS_KERNEL, QueuedKernel, assert_ran_in_order

    snippets = _notebook_snippets()
    assert len(snippets) == 5, snippets
    check = (
        "%batch wait\n"
        "print('TEAM', sorted(set(df['team_status'])), df['team'].notna().sum())\n"
        "print('COLOUR', sorted(set(products['main_colour_status'])))"
    )
    with QueuedKernel(kernel_specs, THIS_KERNEL, tmp_path) as kernel:
        runs = kernel.run_all([(cell, False) for cell in [*snippets, check]], timeout=240)
        assert_ran_in_order(kernel, runs, "README snippets under Run All")
    look = runs[2].text()
    assert "team_status" in look and "succeeded" in look, look
    team, colour = runs[-1].text().splitlines()[-2:]
    assert team.startswith("TEAM ['skipped', 'succeeded']") and not team.endswith(" 0"), team
    assert colour == "COLOUR ['succeeded']", colour


def test_the_python_api_example_runs(simulator: Any, monkeypatch: Any, tmp_path: Path) -> None:
    """The Python API section, run as a script against the simulator (through the environment)."""
    from batch_magic import load_tickets

    section = _readme().split("## The Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1
    monkeypatch.setenv("ANTHROPIC_BASE_URL", simulator.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("BATCH_MAGIC_DIR", str(tmp_path / ".batch_magic"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"df": load_tickets().head(30)}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    df = namespace["df"]
    assert df["team_status"].eq("succeeded").all()
    assert len(namespace["pilot"].frame) == 5
    assert namespace["job"].done
