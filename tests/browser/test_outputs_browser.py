"""The dry run, the pilot and the job list as JupyterLab shows them.

Kernel-side tests check the HTML; only a browser shows what JupyterLab makes
of it. Two things went wrong there before: costs such as "$0.07 expected,
$0.11 at most" were typeset as LaTeX (JupyterLab runs MathJax over HTML
outputs, reading through ``&#36;``), and the pilot table broke words anywhere
(``{"label":"n eutral"}``: JupyterLab's own CSS puts ``word-break: break-all``
on every ``<pre>`` of an output). This checks the rendered page: no maths
element, the dollars visible as text, no word cut in the pilot's cells, and
the panel's preview table inside the panel, one line a cell, each header
aligned as its values.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    # 0
    "%load_ext batch_magic",
    # 1
    "%batch simulator start --processing-time 1",
    # 2
    "import pandas as pd\n"
    "df = pd.DataFrame({'review': ['It cost $5 and broke, a waste of $5.', 'Great value for $20.', 'Fine.']})",
    # 3
    "%%batch df --out s --labels positive,negative,neutral --dry-run\n"
    "Sentiment of this review: {{ review }}",
    # 4
    "%%batch df --out s --labels positive,negative,neutral --pilot 3\n"
    "Sentiment of this review: {{ review }}",
    # 5
    "%%batch df --out s --labels positive,negative,neutral --wait\n"
    "Sentiment of this review: {{ review }}",
    # 6
    "%batch list",
]

#: What MathJax 3 leaves in the page when it typesets something.
MATHS = "mjx-container, .MathJax, mjx-math"


def test_costs_are_text_and_words_are_whole_in_jupyterlab(notebook) -> None:
    from playwright.sync_api import expect

    notebook.write("outputs.ipynb", CELLS)
    notebook.open("outputs.ipynb")
    for index in range(3):
        notebook.run_cell(index)
    expect(notebook.output(1)).to_contain_text("Simulator running at")

    dry_run = notebook.run_cell(3)
    expect(dry_run).to_contain_text("realtime cost")
    pilot = notebook.run_cell(4, timeout_ms=60_000)
    expect(pilot).to_contain_text("Pilot: 3 rows")
    panel = notebook.run_cell(5, timeout_ms=60_000)
    expect(panel.locator(".batch-magic-state")).to_contain_text("done", timeout=60_000)
    listing = notebook.run_cell(6)
    expect(listing).to_contain_text("claude-haiku-5-5")
    notebook.page.wait_for_timeout(1500)  # MathJax typesets a moment after an output appears
    for name, output in (("dry-run", dry_run), ("pilot", pilot), ("list", listing)):
        output.scroll_into_view_if_needed()
        notebook.shot(name, output)

    for name, output in (("dry run", dry_run), ("pilot", pilot), ("panel", panel), ("list", listing)):
        assert output.locator(MATHS).count() == 0, f"{name}: a $ was typeset as maths"
    realtime = dry_run.locator("tr", has_text="realtime cost").inner_text()
    assert realtime.count("$") == 2 and "expected" in realtime and "at most" in realtime, realtime
    assert "Full batch:" in pilot.inner_text() and "$" in pilot.inner_text()
    assert "$" in panel.locator(".batch-magic-details").inner_text()

    # The panel's preview fits the panel: every cell on one line, each header aligned
    # as its values, and the table inside the panel's right edge (it scrolls sideways).
    table = panel.locator(".batch-magic-preview table.batch-magic-table")
    expect(table).to_be_visible()
    heads, first_row, white_space = table.evaluate(
        "t => [[...t.tHead.rows[0].cells].map(c => getComputedStyle(c).textAlign),"
        " [...t.tBodies[0].rows[0].cells].map(c => getComputedStyle(c).textAlign),"
        " [...t.querySelectorAll('th, td')].map(c => getComputedStyle(c).whiteSpace)]"
    )
    assert heads == first_row, (heads, first_row)
    assert set(white_space) == {"nowrap"}, white_space
    edge = panel.locator(".batch-magic-panel").bounding_box()
    scroll = panel.locator(".batch-magic-preview .batch-magic-scroll").bounding_box()
    assert edge is not None and scroll is not None
    assert scroll["x"] + scroll["width"] <= edge["x"] + edge["width"] + 1, (scroll, edge)

    # Left-aligned, as written (JupyterLab right-aligns output table cells).
    first_cell = listing.locator("div.bm-report td").first
    assert first_cell.evaluate("e => getComputedStyle(e).textAlign") == "left"
    # The pilot's cells wrap between words only: every label answer is on one line.
    cells = pilot.locator("div.bm-report td pre")
    assert cells.count() >= 6
    for i in range(cells.count()):
        style = cells.nth(i).evaluate("e => getComputedStyle(e).wordBreak")
        assert style == "normal", style
    answers = pilot.locator("div.bm-report tr td:nth-child(3) pre")
    for i in range(answers.count()):
        box = answers.nth(i).evaluate("e => [e.getClientRects().length, e.scrollHeight, parseFloat(getComputedStyle(e).lineHeight)]")
        _, height, line = box
        assert height < 2 * line, f"the answer {answers.nth(i).inner_text()!r} is broken over lines"
