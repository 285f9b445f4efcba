"""The Files API: upload, list, metadata, delete, content refusal, limits, persistence.

Through the official SDK 2.x (``client.files`` without a beta header, and
``client.beta.files`` with one) and raw HTTP (the SDK 0.x spelling: the beta
header and ``after_id``/``before_id`` paging).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import httpx2
import pytest
from anthropic.types.file_not_downloadable_error import FileNotDownloadableError
from anthropic.types.storage_quota_exceeded_error import StorageQuotaExceededError
from media_fixtures import GREEN, RED, image, image_block, invoice

from batch_magic.simulator import Simulator

BETA = {"anthropic-beta": "files-api-2025-04-14"}


def upload_raw(http: httpx2.Client, name: str, data: bytes, mime: str = "image/png", **form: str) -> httpx2.Response:
    return http.post("/v1/files", files={"file": (name, data, mime)}, data=form or None, headers=BETA)


def test_upload_retrieve_list_delete_through_sdk_2x(sdk_client: anthropic.Anthropic, simulator: Simulator) -> None:
    png = image(RED)
    before = datetime.now(UTC)
    meta = sdk_client.files.upload(file=("photo.png", png, "image/png"))
    assert meta.id.startswith("file_") and meta.type == "file"
    assert (meta.filename, meta.mime_type, meta.size_bytes) == ("photo.png", "image/png", len(png))
    assert meta.downloadable is False and meta.expires_at is None
    assert before - timedelta(seconds=1) <= meta.created_at <= datetime.now(UTC)
    assert sdk_client.files.retrieve_metadata(meta.id) == meta
    pdf = sdk_client.files.upload(file=("scans/invoice.pdf", invoice(), "application/pdf"))
    assert pdf.filename == "invoice.pdf" and pdf.mime_type == "application/pdf"
    assert [f.id for f in sdk_client.files.list()] == [pdf.id, meta.id]  # newest first
    assert simulator.file_ids() == [meta.id, pdf.id]

    deleted = sdk_client.files.delete(meta.id)
    assert (deleted.id, deleted.type) == (meta.id, "file_deleted")
    with pytest.raises(anthropic.NotFoundError, match=f"File not found: {meta.id}"):
        sdk_client.files.retrieve_metadata(meta.id)
    with pytest.raises(anthropic.NotFoundError):
        sdk_client.files.delete(meta.id)
    assert [f.id for f in sdk_client.files.list()] == [pdf.id]
    # No beta header is needed: the Files API is generally available in SDK 2.x.
    upload = next(r for r in simulator.requests if r.endpoint == "file_upload")
    assert "anthropic-beta" not in upload.headers
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")


def test_beta_files_with_the_beta_header(sdk_client: anthropic.Anthropic, simulator: Simulator) -> None:
    meta = sdk_client.beta.files.upload(file=("notes.txt", b"Total: 9.50\n", "text/plain"),
                                        betas=["files-api-2025-04-14"])
    assert (meta.filename, meta.mime_type, meta.size_bytes) == ("notes.txt", "text/plain", 12)
    assert sdk_client.beta.files.retrieve_metadata(meta.id, betas=["files-api-2025-04-14"]).id == meta.id
    assert [f.id for f in sdk_client.beta.files.list(betas=["files-api-2025-04-14"])] == [meta.id]
    sdk_client.beta.files.delete(meta.id, betas=["files-api-2025-04-14"])
    assert simulator.file_ids() == []
    assert {r.headers.get("anthropic-beta") for r in simulator.requests} == {"files-api-2025-04-14"}


def test_listing_pages_every_way_clients_page(http: httpx2.Client, sdk_client: anthropic.Anthropic) -> None:
    ids = [upload_raw(http, f"f{k}.png", image(RED)).json()["id"] for k in range(5)]
    newest_first = ids[::-1]
    first = http.get("/v1/files", params={"limit": 2}, headers=BETA).json()
    assert [f["id"] for f in first["data"]] == newest_first[:2]
    assert (first["has_more"], first["first_id"], first["last_id"]) == (True, newest_first[0], newest_first[1])
    # SDK 0.x style: after_id / before_id cursors.
    second = http.get("/v1/files", params={"limit": 2, "after_id": first["last_id"]}).json()
    third = http.get("/v1/files", params={"limit": 2, "after_id": second["last_id"]}).json()
    assert [f["id"] for f in second["data"] + third["data"]] == newest_first[2:]
    assert third["has_more"] is False and third["next_page"] is None
    back = http.get("/v1/files", params={"limit": 2, "before_id": newest_first[4]}).json()
    assert [f["id"] for f in back["data"]] == newest_first[2:4]
    # SDK 2.x style: the opaque page cursor, followed by the SDK's auto-pagination.
    assert first["next_page"] and second["next_page"]
    assert [f.id for f in sdk_client.files.list(limit=2)] == newest_first
    # ids: a single page of the visible ones, deleted and unknown ids left out.
    http.delete(f"/v1/files/{ids[0]}")
    picked = http.get("/v1/files", params={"ids[]": [ids[0], ids[1], ids[2], "file_011Cnope"]}).json()
    assert sorted(f["id"] for f in picked["data"]) == sorted(ids[1:3]) and picked["has_more"] is False
    assert [f.id for f in sdk_client.files.list(ids=[ids[3]])] == [ids[3]]
    bad = http.get("/v1/files", params={"ids[]": [ids[1]], "limit": 5})
    assert bad.status_code == 400 and "ids" in bad.json()["error"]["message"]
    assert http.get("/v1/files", params={"limit": 0}).status_code == 400
    assert http.get("/v1/files", params={"after_id": "file_011Cunknown"}).status_code == 400


def test_content_is_only_for_files_a_tool_made(http: httpx2.Client, sdk_client: anthropic.Anthropic,
                                               simulator: Simulator) -> None:
    uploaded = sdk_client.files.upload(file=("photo.png", image(RED), "image/png"))
    with pytest.raises(FileNotDownloadableError) as err:
        sdk_client.files.download(uploaded.id)
    assert err.value.status_code == 400 and err.value.error_code == "file_not_downloadable"
    raw = http.get(f"/v1/files/{uploaded.id}/content")
    assert raw.status_code == 400
    assert raw.json()["error"] == {"type": "invalid_request_error", "message": "File is not downloadable",
                                   "details": {"error_code": "file_not_downloadable"}}
    assert http.get("/v1/files/file_011Cnope/content").status_code == 404
    # A file a tool created (seeded by the test) downloads with its type and name.
    made = simulator.add_file(b"x,y\n1,2\n", "chart data.csv", downloadable=True)
    assert made["downloadable"] is True and made["mime_type"] == "text/csv"
    got = sdk_client.files.download(made["id"])
    assert got.read() == b"x,y\n1,2\n"
    assert got.headers["content-type"] == "text/csv"
    assert got.headers["content-disposition"] == "attachment; filename*=utf-8''chart%20data.csv"


def test_size_and_storage_limits(sdk_client: anthropic.Anthropic, simulator: Simulator) -> None:
    simulator.configure(max_file_bytes=1000, files_storage_bytes=2500)
    with pytest.raises(anthropic.ContentTooLargeError, match="1001 bytes exceeds the maximum file size"):
        sdk_client.files.upload(file=("big.bin", b"x" * 1001, "application/octet-stream"))
    with pytest.raises(anthropic.ContentTooLargeError, match="the upload exceeds the maximum file size"):
        sdk_client.files.upload(file=("huge.bin", b"x" * 200_000, "application/octet-stream"))
    first = sdk_client.files.upload(file=("a.bin", b"a" * 1000, "application/octet-stream"))
    sdk_client.files.upload(file=("b.bin", b"b" * 1000, "application/octet-stream"))
    with pytest.raises(StorageQuotaExceededError) as err:
        sdk_client.files.upload(file=("c.bin", b"c" * 1000, "application/octet-stream"))
    assert err.value.status_code == 400 and "Delete files to free up space" in str(err.value.api_message)
    sdk_client.files.delete(first.id)  # deleting frees the space again
    assert sdk_client.files.upload(file=("c.bin", b"c" * 1000, "application/octet-stream")).size_bytes == 1000
    assert len(simulator.file_ids()) == 2


def test_filenames_types_and_bad_forms(http: httpx2.Client) -> None:
    sniffed = upload_raw(http, "", image(GREEN), "application/octet-stream").json()
    assert (sniffed["filename"], sniffed["mime_type"]) == ("unnamed.png", "image/png")
    by_extension = upload_raw(http, "notes.md", b"# hi", "application/octet-stream").json()
    assert by_extension["mime_type"] == "text/markdown"
    bad = upload_raw(http, "what?.png", image(GREEN))
    assert bad.status_code == 400 and "Invalid filename 'what?.png'" in bad.json()["error"]["message"]
    assert upload_raw(http, "x" * 256, b"x", "text/plain").status_code == 400
    no_file = http.post("/v1/files", files={"other": ("a.txt", b"a", "text/plain")})
    assert no_file.status_code == 400 and "file: Field required" in no_file.json()["error"]["message"]
    not_form = http.post("/v1/files", json={"file": "abc"})
    assert not_form.status_code == 400 and "multipart/form-data" in not_form.json()["error"]["message"]
    assert upload_raw(http, "façade résumé.txt", b"x", "text/plain").json()["filename"] == "façade résumé.txt"
    rfc2231 = (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename*=utf-8''na%C3%AFve.txt\r\n"
               b"Content-Type: text/plain\r\n\r\nhi\r\n--XX--\r\n")
    spelled = http.post("/v1/files", content=rfc2231, headers={"content-type": "multipart/form-data; boundary=XX"})
    assert (spelled.json()["filename"], spelled.json()["size_bytes"]) == ("naïve.txt", 2)
    expiry = upload_raw(http, "a.txt", b"a", "text/plain", expires_in_seconds="60")
    assert expiry.status_code == 400 and "expires_in_seconds" in expiry.json()["error"]["message"]


def test_an_expiring_upload(sdk_client: anthropic.Anthropic, simulator: Simulator) -> None:
    clock = simulator.use_fake_clock()
    meta = sdk_client.files.upload(file=("red.png", image(RED), "image/png"), expires_in_seconds=3600)
    assert meta.expires_at == meta.created_at + timedelta(hours=1)
    ask = {"model": "claude-haiku-4-5", "max_tokens": 100,
           "messages": [{"role": "user", "content": [image_block(meta.id)]}]}
    assert "a red image" in sdk_client.messages.create(**ask).content[0].text
    clock.advance(3600)
    with pytest.raises(anthropic.BadRequestError, match=f"File {meta.id} has expired"):
        sdk_client.messages.create(**ask)
    with pytest.raises(anthropic.NotFoundError) as err:
        sdk_client.files.download(meta.id)
    assert err.value.error_code == "file_expired"
    assert sdk_client.files.retrieve_metadata(meta.id).id == meta.id  # the metadata stays


def test_concurrent_uploads_respect_the_storage_limit(simulator: Simulator) -> None:
    simulator.configure(files_storage_bytes=30 * 100)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        c = anthropic.Anthropic(api_key="sk-test", base_url=simulator.url, max_retries=0)
        for j in range(5):
            try:
                c.files.upload(file=(f"w{k}-{j}.txt", bytes([65 + k]) * 100, "text/plain"))
                result = "ok"
            except StorageQuotaExceededError:
                result = "full"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 30 and outcomes.count("full") == 10
    assert len(simulator.file_ids()) == 30


def test_faults_target_file_endpoints(sdk_client: anthropic.Anthropic, simulator: Simulator) -> None:
    simulator.add_fault("file_upload", 529, times=1, retry_after=0.01)
    meta = sdk_client.files.upload(file=("a.txt", b"a", "text/plain"))  # retried by the SDK
    assert [r.status for r in simulator.requests if r.endpoint == "file_upload"] == [529, 200]
    assert simulator.file_ids() == [meta.id]
    assert all(r.batch_id is None for r in simulator.requests)


def test_files_survive_a_restart(tmp_path: Path) -> None:
    png, pdf = image(RED), invoice()
    with Simulator(state_dir=tmp_path, processing_time=0) as sim:
        c = sim.client(max_retries=0)
        red = c.files.upload(file=("red.png", png, "image/png"))
        doc = c.files.upload(file=("invoice.pdf", pdf, "application/pdf"))
        gone = c.files.upload(file=("gone.txt", b"bye", "text/plain"))
        c.files.delete(gone.id)
    assert (tmp_path / "files" / f"{red.id}.bin").read_bytes() == png
    assert not (tmp_path / "files" / f"{gone.id}.bin").exists()
    with Simulator(state_dir=tmp_path, processing_time=0) as sim2:
        c = sim2.client(max_retries=0)
        assert sim2.file_ids() == [red.id, doc.id]
        assert c.files.retrieve_metadata(red.id) == red
        assert [f.id for f in c.files.list()] == [doc.id, red.id]
        answer = c.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[
            {"role": "user", "content": [image_block(red.id), {"type": "text", "text": "Describe"}]}])
        assert answer.content[0].text.startswith("Simulated answer: a red image, 64x48 pixels.")
        newer = c.files.upload(file=("new.txt", b"new", "text/plain"))
        assert [f.id for f in c.files.list()] == [newer.id, doc.id, red.id]
        sim2.reset()
    assert list((tmp_path / "files").iterdir()) == []


def test_an_upload_is_read_once(sdk_client: anthropic.Anthropic, simulator: Simulator,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    meta = sdk_client.files.upload(file=("red.png", image(RED), "image/png"))
    calls: list[int] = []
    from batch_magic.simulator import media

    real = media.read_image
    monkeypatch.setattr(media, "read_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(20):
        sdk_client.messages.create(model="claude-haiku-4-5", max_tokens=50,
                                   messages=[{"role": "user", "content": [image_block(meta.id)]}])
    assert calls == []
