"""No HTML output lets JupyterLab typeset a cost as maths.

JupyterLab renders text between two ``$`` in an HTML output as LaTeX
("realtime cost $0.0716 expected, $0.1137 at most" came out as italic maths).
MathJax reads through entities but never joins text across elements, so every
dollar must be an ``&#36;`` in its own span. This scans every HTML display the
package makes: dry run, pilot, the panel's widgets and its saved HTML, the job list.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

import batch_magic as bm
from _jobs import FAST
from batch_magic.journal import Journal
from batch_magic.panel import JobPanel
from batch_magic.report import JobList

SAFE_DOLLAR = "<span>&#36;</span>"


def assert_no_maths(where: str, markup: str) -> None:
    rest = markup.replace(SAFE_DOLLAR, "")
    at = rest.find("$")
    assert at < 0, f"{where}: {rest[max(0, at - 80) : at + 80]}"
    assert "&#36;" not in rest and "&dollar;" not in rest, where  # an entity alone is read through


def test_every_html_output_is_free_of_maths(simulator: Any, tmp_path: Any) -> None:
    df = pd.DataFrame({"review": ["costs $5, worth $6", "awful", "fine"]})
    template = "Price talk: {{ review }}"
    client = simulator.client()
    outputs: dict[str, str] = {}

    prepared = bm.dry_run(df, template, labels="positive,negative,neutral")
    outputs["dry run"] = prepared._repr_html_()
    assert "realtime cost" in outputs["dry run"]

    pilot = bm.run_pilot(df, template, n=2, client=client)
    outputs["pilot"] = pilot._repr_html_()

    journal = Journal(tmp_path / "journal")
    job = bm.submit(df, template, client=client, journal=journal, settings=FAST, start=False)
    panel = JobPanel(job, tick=False)
    job.start()
    job.wait(30)
    for name in ("header", "state", "details", "summary", "preview", "error"):
        outputs[f"panel {name}"] = getattr(panel, name).value
    outputs["panel saved html"] = panel.widget._repr_mimebundle_()["text/html"]
    outputs["list"] = JobList(bm.jobs(journal))._repr_html_()
    # A sample's dry run after that job: answers reused (what they save) and the whole
    # frame's projected cost, both in dollars.
    again = bm.dry_run(df, template, sample=2, seed=1, client=client, journal=journal)
    assert again.known.n and again.plan.n_not_sent == 1
    outputs["dry run, reused and sampled"] = again._repr_html_()
    assert "answered already in the journal" in outputs["dry run, reused and sampled"]
    assert "1 not sent (seed 1); all 3 rows" in outputs["dry run, reused and sampled"]

    dollars = 0
    for where, markup in outputs.items():
        assert_no_maths(where, markup)
        dollars += markup.count(SAFE_DOLLAR)
    assert dollars >= 8  # the costs are there, only safe
    # What a person reads still has its dollars.
    text = re.sub(r"<[^>]+>", "", outputs["dry run"]).replace("&#36;", "$")
    assert re.search(r"realtime cost\$[\d.]+ expected, \$[\d.]+ at most", text)
