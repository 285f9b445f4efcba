"""Images and PDFs through the magics, in a real IPython shell against the simulator."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

import batch_magic as bm
from _shell import magic_instance
from batch_magic.datasets import COLOURS
from batch_magic.journal import Journal


def only_job(ip: Any) -> Any:
    jobs = magic_instance(ip)._session_jobs()
    assert len(jobs) == 1
    return jobs[0]


def test_column_form_sends_each_photo_then_the_instructions(
    ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    products = bm.load_products()
    ip_sim.user_ns["products"] = products
    ip_sim.run_cell(
        f"%%batch products.photo --out guess --labels {','.join(COLOURS)} --wait\n"
        "What is the main colour of this product?"
    )
    assert (products["guess_status"] == "succeeded").all()
    # The fake model names each photo's dominant colour: the gold labels.
    assert (products["guess"].astype(str) == products["colour"].astype(str)).all()
    prompt = Journal().read_prompts(only_job(ip_sim).id)[0]
    assert prompt.startswith("\ue000image:") and prompt.endswith("What is the main colour of this product?")
    assert sum(1 for r in simulator.requests if r.endpoint == "file_upload") == 12
    assert "uploading" in capsys.readouterr().out


def test_pdfs_with_a_schema_and_the_files_command(
    ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    invoices = bm.load_invoices()
    schema = {
        "type": "object",
        "properties": {"invoice_number": {"type": "string"}, "vendor": {"type": "string"},
                       "total": {"type": "number"}},
        "required": ["invoice_number", "vendor", "total"],
        "additionalProperties": False,
    }
    ip_sim.user_ns.update(invoices=invoices, schema=schema)
    ip_sim.run_cell("%%batch invoices --out inv --schema schema --wait\n{{ pdf(invoice) }}\nExtract the fields.")
    assert (invoices["inv_invoice_number"] == invoices["invoice_number"]).all()
    assert (invoices["inv_total"].astype(float) == invoices["total"]).all()
    job = only_job(ip_sim)

    listed = ip_sim.run_cell("%batch files").result
    assert sorted(listed["name"]) == sorted(p.rsplit("/", 1)[1] for p in invoices["invoice"])
    assert set(listed["file_id"]) == set(simulator.file_ids())
    capsys.readouterr()
    ip_sim.run_cell(f"%batch files {job.id} --delete")
    assert "5 uploads deleted" in capsys.readouterr().out
    assert simulator.file_ids() == []


def test_the_files_command_for_a_text_job_and_bad_media(ip_sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    df = pd.DataFrame({"text": ["a", "b"]})
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x --wait\nSay {{ text }}")
    capsys.readouterr()
    assert ip_sim.run_cell("%batch files").result is None
    assert "shows no image or PDF" in capsys.readouterr().out
    ip_sim.user_ns["photos"] = pd.DataFrame({"photo": ["nowhere/missing.png", "nowhere/gone.jpg"]})
    with pytest.raises(UsageError, match=r"2 rows hold media that cannot be sent: row 0: 'nowhere/missing.png' "
                                         r"\(no such file\)"):
        ip_sim.run_cell("%%batch photos.photo --out c\nColour?")


def test_dry_run_shows_the_files_and_an_approximate_estimate(
    ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip_sim.user_ns["products"] = bm.load_products()
    ip_sim.run_cell("%%batch products --dry-run\n{{ image(photo) }} Colour of the {{ name }}?")
    shown = capsys.readouterr().out
    assert "[image p01_ceramic_mug.png, 128x128 px] Colour of the Ceramic mug?" in shown
    assert "for images and PDFs, approximate" in shown
    assert not any(r.endpoint in ("file_upload", "create") for r in simulator.requests)
