"""A third-party style client: imports only ``anthropic`` (never batch_magic).

Run as a script against a simulator started as a command, with
ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY set. Works with anthropic 0.x and 2.x.
Prints one line of JSON describing what it saw; exits non-zero on a failure.
"""

import json
import os
import sys
import time

import anthropic

assert "batch_magic" not in sys.modules

client = anthropic.Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"], base_url=os.environ["ANTHROPIC_BASE_URL"])
reqs = [
    {
        "custom_id": f"row-{i}",
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": f"Is review {i} positive or negative? I love it."}],
        },
    }
    for i in range(3)
]
first = client.messages.batches.create(requests=reqs)
seen = []
deadline = time.time() + 60
while True:
    batch = client.messages.batches.retrieve(first.id)
    counts = batch.request_counts
    seen.append([batch.processing_status, counts.processing, counts.succeeded])
    if batch.processing_status == "ended":
        break
    assert counts.processing == 3 and counts.succeeded == 0, seen
    assert time.time() < deadline, "batch never ended"
    time.sleep(0.1)
assert batch.request_counts.succeeded == 3, batch
results = list(client.messages.batches.results(first.id))
ids = sorted(r.custom_id for r in results)
assert ids == ["row-0", "row-1", "row-2"], ids
assert all(r.result.type == "succeeded" for r in results)
second = client.messages.batches.create(requests=reqs[:1])
listed = [b.id for b in client.messages.batches.list(limit=10).data]
assert listed.index(second.id) < listed.index(first.id), listed
print(json.dumps({"ok": True, "polls": seen, "ids": ids, "sdk": anthropic.__version__}))
