"""The 2023-06-01 rules as an anthropic 0.x client meets them (it sends that version).

Run as a script against a simulator, with ANTHROPIC_BASE_URL and
ANTHROPIC_API_KEY set; imports only ``anthropic``. Prints one line of JSON.
"""

import json
import os
import sys
import time

import anthropic

assert "batch_magic" not in sys.modules
client = anthropic.Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"], base_url=os.environ["ANTHROPIC_BASE_URL"],
                             max_retries=0)
user = [{"role": "user", "content": "Classify: the parcel was late."}]


def error_of(**kw):
    try:
        client.messages.create(max_tokens=300, messages=kw.pop("messages", user), **kw)
    except anthropic.BadRequestError as exc:
        return exc.body["error"]["message"]
    return None


report = {
    "sdk": anthropic.__version__,
    "temperature_haiku_4_5": error_of(model="claude-haiku-4-5", temperature=0.2),
    "temperature_opus_4_7": error_of(model="claude-opus-4-7", temperature=0.2),
    "temperature_default_opus_4_7": error_of(model="claude-opus-4-7", temperature=1.0),
    "both_haiku_4_5": error_of(model="claude-haiku-4-5", temperature=0.2, top_p=0.9),
    "prefill_sonnet_4_6": error_of(model="claude-sonnet-4-6", messages=[*user, {"role": "assistant", "content": "{"}]),
    "prefill_haiku_4_5": error_of(model="claude-haiku-4-5", messages=[*user, {"role": "assistant", "content": "{"}]),
}
thinking = client.messages.create(model="claude-haiku-4-5", max_tokens=2048, messages=user,
                                  thinking={"type": "enabled", "budget_tokens": 1024})
report["thinking_blocks"] = [b.type for b in thinking.content]
report["thinking_text"] = bool(thinking.content[0].thinking)
batch = client.messages.batches.create(requests=[
    {"custom_id": "old", "params": {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": user,
                                    "temperature": 0.2}},
    {"custom_id": "new", "params": {"model": "claude-opus-4-7", "max_tokens": 50, "messages": user,
                                    "temperature": 0.2}},
])
while client.messages.batches.retrieve(batch.id).processing_status != "ended":
    time.sleep(0.05)
results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
report["batch"] = {k: [v.type, v.error.error.message if v.type == "errored" else None] for k, v in results.items()}
print(json.dumps(report))
