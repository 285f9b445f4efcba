"""The Files API as an anthropic 0.x client uses it (beta header, after_id paging).

Run as a script against a simulator, with ANTHROPIC_BASE_URL and
ANTHROPIC_API_KEY set; imports only ``anthropic`` and the standard library.
Prints one line of JSON.
"""

import json
import os
import struct
import sys
import zlib

import anthropic

assert "batch_magic" not in sys.modules
client = anthropic.Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"], base_url=os.environ["ANTHROPIC_BASE_URL"],
                             max_retries=0)


def png(width, height, rgb):
    """A solid RGB PNG, written with zlib (no imaging library here)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


red = client.beta.files.upload(file=("red.png", png(40, 30, (220, 30, 30)), "image/png"))
notes = [client.beta.files.upload(file=(f"n{k}.txt", b"Total: 1", "text/plain")).id for k in range(3)]
listed = [f.id for f in client.beta.files.list(limit=2)]  # SyncPage: pages on after_id
try:
    client.beta.files.download(red.id)
    download = None
except anthropic.BadRequestError as exc:
    download = exc.body["error"]["message"]
answer = client.messages.create(
    model="claude-haiku-4-5", max_tokens=100,
    messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": red.id}},
                                           {"type": "text", "text": "What is it?"}]}],
    extra_headers={"anthropic-beta": "files-api-2025-04-14"},
)
deleted = client.beta.files.delete(red.id)
print(json.dumps({
    "sdk": anthropic.__version__,
    "uploaded": [red.filename, red.mime_type, red.size_bytes > 0, red.downloadable],
    "listed": listed == [*reversed(notes), red.id],
    "retrieved": client.beta.files.retrieve_metadata(notes[0]).filename,
    "download": download,
    "answer": answer.content[0].text,
    "deleted": [deleted.id == red.id, deleted.type],
}))
