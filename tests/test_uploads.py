"""Jobs over images and PDFs against the simulator: each distinct file uploaded once and
recorded before a batch names it, re-runs and other jobs reusing the uploads, an
interrupted upload adopted, failures retried or reported, bad media refused before
anything is uploaded or sent, and a job's uploads listed and deleted when asked.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import anthropic
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import batch_magic as bm
from _jobs import fast
from batch_magic.errors import APIError, BatchMagicError, MediaError
from batch_magic.journal import Journal
from batch_magic.media import MediaCollector, markers
from batch_magic.panel import format_status
from batch_magic.simulator import Simulator
from batch_magic.uploads import Intent, UploadStore, server_key

COLOURS = {"red": (220, 20, 30), "blue": (20, 40, 220), "green": (30, 160, 40), "yellow": (240, 220, 20)}
#: A create whose answer was lost is looked for 2 s, not the real API's 10 minutes.
SETTINGS = fast(create_grace=2.0)


def pdf_bytes(number: int, pages: int = 1) -> bytes:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    try:
        from make_media import pdf_bytes as write
    finally:
        sys.path.pop(0)
    lines = [(11, f"Invoice number: INV-{number:04d}"), (11, f"Total: ${number * 10:,.2f}")]
    return write([lines] * pages, title=f"Invoice INV-{number:04d}", author="Test Supplier")


def make_files(folder: Path, n_images: int, n_pdfs: int) -> tuple[list[Path], list[Path]]:
    """Distinct images (each a colour and a size of its own) and distinct PDFs."""
    folder.mkdir(parents=True, exist_ok=True)
    images, pdfs = [], []
    names = list(COLOURS)
    rng = np.random.default_rng(n_images)
    for i in range(n_images):
        path = folder / f"photo_{i:03d}.png"
        # A photo's grain around its colour: a few KB, as small product photos are.
        base = np.array(COLOURS[names[i % len(names)]], dtype=np.int16)
        pixels = np.clip(base + rng.integers(-12, 13, (30, 40 + i, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
        images.append(path)
    for i in range(n_pdfs):
        path = folder / f"invoice_{i:03d}.pdf"
        path.write_bytes(pdf_bytes(i, pages=1 + i % 2))
        pdfs.append(path)
    return images, pdfs


def uploads_in_log(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "file_upload" and r.status == 200)


def names_on_server(client: anthropic.Anthropic) -> Counter[str]:
    return Counter(f.filename for f in client.files.list(limit=1000))


def test_a_job_of_hundreds_of_images_and_pdfs_uploads_each_file_once(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, pdfs = make_files(tmp_path / "files", 150, 40)
    rng = np.random.default_rng(7)
    files = [str(p) for p in images + pdfs]
    picks = rng.integers(0, len(files), 360)  # duplicates: many rows show the same file
    column: list[object] = [files[k] for k in picks]
    copy = tmp_path / "files" / "same_bytes_other_name.png"
    copy.write_bytes(images[0].read_bytes())
    column += [str(copy), None, np.nan, str(images[0])]
    df = pd.DataFrame({"file": column, "question": [f"q{i % 3}" for i in range(len(column))]})

    job = bm.submit(df, "{{ media(file) }}\nWhat is this? ({{ question }})", out="seen", client=sdk_client,
                    journal=journal, settings=SETTINGS, wait=True)

    distinct = len({files[k] for k in picks} | {str(images[0])})
    status = df["seen_status"].astype(object)
    assert (status[df["file"].isna()] == "skipped").all()
    assert (status[df["file"].notna()] == "succeeded").all()
    # The fake model describes what it was shown: each row's own file.
    for path, answer in zip(df["file"], df["seen"]):
        if isinstance(path, str) and path.endswith(".png"):
            colour = list(COLOURS)[int(Path(path).stem.split("_")[-1]) % 4] if "photo_" in path else "red"
            assert f"a {colour} image" in answer
        elif isinstance(path, str):
            number = int(Path(path).stem.split("_")[1])
            assert f'{1 + number % 2}-page PDF titled "Invoice INV-{number:04d}"' in answer
    # Each distinct file (by content) uploaded exactly once, named by its hash.
    assert uploads_in_log(simulator) == distinct
    on_server = names_on_server(sdk_client)
    assert len(on_server) == distinct and set(on_server.values()) == {1}
    assert all(name.startswith("bm-") for name in on_server)
    # Recorded in the journal's uploads table, under this server.
    store = UploadStore(journal)
    items = journal.read_media(job.id)
    assert len(items) == distinct
    recorded = store.records(items)
    assert {u.file_id for u in recorded} == set(simulator.file_ids())
    assert {u.base_url for u in recorded} == {server_key(simulator.url)}
    # The batch body names the uploads: a few hundred bytes a request, not the files.
    creates = [r for r in simulator.requests if r.endpoint == "create"]
    body = sum(int(r.headers["content-length"]) for r in creates)
    assert body / job.status.n_requests < 400
    # The same requests with their files inline as base64, as peers send them:
    inline = sum(4 * items[sha].size // 3 for p in journal.read_prompts(job.id) for _, sha in markers(p))
    assert body < inline / 20
    # Uploads happened before the create that names them.
    order = [r.endpoint for r in simulator.requests if r.endpoint in ("file_upload", "create")]
    assert order.index("create") > max(i for i, e in enumerate(order) if e == "file_upload")


def test_a_rerun_another_job_and_a_retry_upload_nothing(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, pdfs = make_files(tmp_path / "files", 12, 3)
    df = pd.DataFrame({"file": [str(p) for p in images + pdfs]})
    first = bm.submit(df, "{{ media(file) }} Describe it.", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert uploads_in_log(simulator) == 15
    simulator.clear_requests()

    again = bm.submit(df, "{{ media(file) }} Describe it.", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert again.id == first.id
    assert uploads_in_log(simulator) == 0 and not any(r.endpoint == "create" for r in simulator.requests)

    # Another job (other words, other output) over the same files: new batches, no upload.
    other = pd.DataFrame({"photo": [str(p) for p in images]})
    job = bm.submit(other, "{{ image(photo) }} Which colour?", labels=list(COLOURS), out="colour",
                    client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert job.id != first.id
    assert uploads_in_log(simulator) == 0
    assert any(r.endpoint == "create" for r in simulator.requests)
    assert list(other["colour"].astype(str)) == [list(COLOURS)[i % 4] for i in range(12)]

    # Rows that errored are retried in a new job that names the same uploads.
    simulator.configure(error_rates={"overloaded_error": 0.5})
    failing = pd.DataFrame({"photo": [str(p) for p in images]})
    settings = replace(SETTINGS, max_attempts=1)
    failed = bm.submit(failing, "{{ image(photo) }} Colour, please.", out="c", client=sdk_client,
                       journal=journal, settings=settings, wait=True)
    errored = int((failing["c_status"].astype(object) == "errored").sum())
    assert errored > 0
    simulator.configure(error_rates={})
    simulator.clear_requests()
    retry = bm.retry_failed(job_id=failed.id, df=failing, client=sdk_client, journal=journal,
                            settings=SETTINGS)
    retry.wait(60)
    assert (failing["c_status"].astype(object) == "succeeded").all()
    assert uploads_in_log(simulator) == 0
    assert len(names_on_server(sdk_client)) == 15


def test_bad_media_is_refused_before_anything_is_uploaded_or_sent(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: the message shortens long values
    images, _ = make_files(tmp_path / "files", 6, 0)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    column = [str(p) for p in images] + ["gone.png", str(notes), None]
    df = pd.DataFrame({"photo": column}, index=[f"item-{i}" for i in range(len(column))])
    with pytest.raises(MediaError) as err:
        bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS)
    message = str(err.value)
    assert "2 rows hold media that cannot be sent" in message
    assert "row 'item-6': 'gone.png' (no such file)" in message
    assert "row 'item-7'" in message and "neither PNG, JPEG, GIF, WebP nor PDF" in message
    assert not any(r.endpoint in ("file_upload", "create") for r in simulator.requests)
    assert journal.job_ids() == []  # nothing written either

    # The user leaves those rows out (NA): the job runs, those rows are skipped.
    df.loc[["item-6", "item-7"], "photo"] = None
    bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert Counter(df["answer_status"].astype(object)) == {"succeeded": 6, "skipped": 3}
    assert uploads_in_log(simulator) == 6


def test_an_upload_that_landed_before_a_crash_is_adopted_not_sent_again(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 4, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    job = bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, start=False)
    items = list(journal.read_media(job.id).values())
    landed = items[0]
    # A driver wrote its intent, its upload reached the server, then it died.
    store = UploadStore(journal)
    base = server_key(simulator.url)
    store.write_intent(base, Intent(landed.sha256, landed.upload_name, landed.size, "2020-01-01T00:00:00Z"))
    sdk_client.files.upload(file=(landed.upload_name, Path(landed.path or "").read_bytes(), landed.mime))
    # Another intent whose upload never arrived: sent now.
    lost = items[1]
    store.write_intent(base, Intent(lost.sha256, lost.upload_name, lost.size, "2020-01-01T00:00:00Z"))
    simulator.clear_requests()

    job.start()
    job.wait(60)
    assert (df["answer_status"].astype(object) == "succeeded").all()
    assert uploads_in_log(simulator) == 3  # the one that had landed was not sent again
    assert set(names_on_server(sdk_client).values()) == {1}
    assert store.get(base, landed.sha256).adopted  # type: ignore[union-attr]
    assert store.intent(base, lost.sha256) is None


def test_transient_upload_failures_are_retried_and_never_duplicate(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, pdfs = make_files(tmp_path / "files", 10, 2)
    df = pd.DataFrame({"file": [str(p) for p in images + pdfs]})
    simulator.add_fault("file_upload", 503, times=3)
    simulator.add_fault("file_upload", 429, times=2, retry_after=0.05)
    bm.submit(df, "{{ media(file) }} What is it?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert (df["answer_status"].astype(object) == "succeeded").all()
    on_server = names_on_server(sdk_client)
    assert len(on_server) == 12 and set(on_server.values()) == {1}


def test_a_refused_upload_fails_the_job_and_a_rerun_goes_on(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 8, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    simulator.add_fault("file_upload", 400, times=1, message="Invalid filename", error_type="invalid_request_error")
    job = bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS)
    with pytest.raises(APIError, match=r"Uploading photo_00\d\.png \(PNG image, \d+x30 px, .*\) was refused: "
                                       r"400 invalid_request_error: Invalid filename"):
        job.wait(60)
    assert job.status.state == "failed"
    assert not any(r.endpoint == "create" for r in simulator.requests)
    job = bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert (df["answer_status"].astype(object) == "succeeded").all()
    assert len(names_on_server(sdk_client)) == 8


def test_the_status_counts_files_while_uploading(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 9, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    simulator.add_fault("file_upload", None, delay=0.05)
    job = bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, start=False)
    seen = []
    job.observe(seen.append)
    job.start()
    job.wait(60)
    uploading = [s for s in seen if s.state == "uploading"]
    assert uploading and {s.uploads_total for s in uploading} == {9}
    counts = [s.uploads_done for s in uploading]
    assert counts == sorted(counts) and counts[-1] == 9
    assert any(format_status(s).startswith("uploading 9/9 files") for s in uploading)
    mid = next(s for s in uploading if 0 < s.uploads_done < 9)
    assert format_status(mid).startswith(f"uploading {mid.uploads_done}/9 files")
    # Nothing was created before every file was ready.
    states = [s.state for s in seen]
    assert states.index("submitting") > max(i for i, s in enumerate(states) if s == "uploading")


def test_media_given_in_memory_survive_a_restart(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    pictures = [Image.new("RGB", (20 + i, 20), colour) for i, colour in enumerate(["red", "blue", "green"])]
    raw = io.BytesIO()
    Image.new("RGB", (8, 8), "yellow").save(raw, format="PNG")
    df = pd.DataFrame({"photo": [*pictures, raw.getvalue()]})
    job = bm.submit(df, "{{ image(photo) }} Colour?", labels=list(COLOURS), client=sdk_client, journal=journal,
                    settings=SETTINGS, start=False)
    staged = journal.job_dir(job.id) / "media"
    assert len(list(staged.iterdir())) == 4
    del df, pictures  # the kernel died: only the journal is left
    again = bm.attach(job.id, client=sdk_client, journal=journal, settings=SETTINGS)
    frame = again.wait(60)
    assert list(frame["answer"].astype(str)) == ["red", "blue", "green", "yellow"]
    assert uploads_in_log(simulator) == 4
    assert not staged.exists()  # ended: the staged copies are gone, the uploads recorded


def test_a_file_changed_after_planning_is_not_sent(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 2, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    job = bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, start=False)
    Image.new("RGB", (99, 99), "black").save(images[1])
    job.start()
    with pytest.raises(BatchMagicError, match="changed since the job was planned"):
        job.wait(60)
    assert not any(r.endpoint == "create" for r in simulator.requests)


def test_files_are_listed_and_deleted_only_when_asked(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, pdfs = make_files(tmp_path / "files", 3, 1)
    df = pd.DataFrame({"file": [str(p) for p in images + pdfs]})
    job = bm.submit(df, "{{ media(file) }} What?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    listed = bm.job_files(job.id, journal=journal)
    assert sorted(listed["name"]) == sorted(p.name for p in images + pdfs)
    assert set(listed["file_id"]) == set(simulator.file_ids())
    assert list(listed["size"]) == [Path(tmp_path / "files" / n).stat().st_size for n in listed["name"]]

    # Another job shows one of the files and has not ended: that upload is kept.
    pending = bm.submit(pd.DataFrame({"photo": [str(images[0])]}), "{{ image(photo) }} Again?",
                        client=sdk_client, journal=journal, settings=SETTINGS, start=False)
    with pytest.raises(BatchMagicError, match="its uploads are kept while it can still go on"):
        bm.delete_job_files(pending.id, client=sdk_client, journal=journal)
    report = bm.delete_job_files(job.id, client=sdk_client, journal=journal)
    assert len(report.deleted) == 3 and len(report.kept) == 1 and pending.id in report.kept[0][1]
    assert len(simulator.file_ids()) == 1
    assert bm.job_files(job.id, journal=journal)["file_id"].notna().sum() == 1


def test_a_fresh_read_checks_the_collector_contract(tmp_path: Path) -> None:
    """The template functions count every problem, even past the ones they keep."""
    collector = MediaCollector()
    show = collector.function("image")
    for i in range(150):
        collector.row = i
        assert show(str(tmp_path / f"none_{i}.png")) == ""
    assert collector.n_problems == 150 and len(collector.problems) == 100


def test_a_job_canceled_while_uploading_creates_no_batch(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 30, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    simulator.add_fault("file_upload", None, delay=0.1)
    job = bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS)
    deadline = time.monotonic() + 30
    while job.status.uploads_done < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    job.wait(60)
    assert job.status.state == "canceled"
    assert (df["answer_status"].astype(object) == "canceled").all()
    assert not any(r.endpoint == "create" for r in simulator.requests)
    assert 3 <= uploads_in_log(simulator) < 30  # stopped early; what was uploaded is recorded
    assert len(UploadStore(journal).records(journal.read_media(job.id))) == uploads_in_log(simulator)


def test_exact_tokens_count_the_text_and_estimate_the_files(
    simulator: Simulator, sdk_client: anthropic.Anthropic, tmp_path: Path
) -> None:
    images, pdfs = make_files(tmp_path / "files", 3, 1)
    df = pd.DataFrame({"file": [str(p) for p in images + pdfs]})
    plan = bm.dry_run(df, "{{ media(file) }} Describe it in detail, please.", exact_tokens=True, client=sdk_client)
    assert plan.token_count is not None and plan.token_count.method == "all"
    assert not plan.estimate.exact_input  # the files' share is an estimate
    assert plan.estimate.media_tokens > 1600  # the PDF's page alone
    assert "for images and PDFs, approximate" in repr(plan)
    assert not any(r.endpoint in ("file_upload", "create") for r in simulator.requests)


def test_an_upload_deleted_on_the_server_is_uploaded_again(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 5, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    gone = simulator.file_ids()[2]
    sdk_client.files.delete(gone)  # from the Console, say: the journal still records it
    simulator.clear_requests()
    bm.submit(df, "{{ image(photo) }} Colour, again?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert (df["answer_status"].astype(object) == "succeeded").all()
    assert uploads_in_log(simulator) == 1
    assert gone not in {u.file_id for u in UploadStore(journal).records(journal.read_media(journal.job_ids()[0]))}


def test_when_the_check_cannot_be_made_the_records_are_trusted(
    simulator: Simulator, sdk_client: anthropic.Anthropic, journal: Journal, tmp_path: Path
) -> None:
    images, _ = make_files(tmp_path / "files", 4, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    bm.submit(df, "{{ image(photo) }} Colour?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    simulator.add_fault("file_list", 503)
    simulator.clear_requests()
    bm.submit(df, "{{ image(photo) }} Colour, again?", client=sdk_client, journal=journal, settings=SETTINGS, wait=True)
    assert (df["answer_status"].astype(object) == "succeeded").all()
    assert uploads_in_log(simulator) == 0


def test_the_built_in_simulator_restarted_on_another_port_reuses_its_uploads(
    journal: Journal, tmp_path: Path
) -> None:
    """A teacher's restart: the in-notebook simulator keeps its files in the journal
    folder and comes back on a new port; nothing is uploaded again, and a simulator
    that lacks the files gets them."""
    images, _ = make_files(tmp_path / "files", 4, 0)
    df = pd.DataFrame({"photo": [str(p) for p in images]})
    state = tmp_path / "sim-state"
    with Simulator(processing_time=0.0, state_dir=state) as first:
        bm.submit(df, "{{ image(photo) }} Colour?", client=first.client(), journal=journal,
                  settings=SETTINGS, wait=True)
        assert uploads_in_log(first) == 4
    with Simulator(processing_time=0.0, state_dir=state) as again:  # on a new port (port 0 again)
        bm.submit(df, "{{ image(photo) }} Colour, once more?", client=again.client(), journal=journal,
                  settings=SETTINGS, wait=True)
        assert (df["answer_status"].astype(object) == "succeeded").all()
        assert uploads_in_log(again) == 0
    with Simulator(processing_time=0.0) as fresh:  # no state: it never saw the files
        bm.submit(df, "{{ image(photo) }} Colour, a third time?", client=fresh.client(), journal=journal,
                  settings=SETTINGS, wait=True)
        assert (df["answer_status"].astype(object) == "succeeded").all()
        assert uploads_in_log(fresh) == 4
