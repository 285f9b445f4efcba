"""The engine with the anthropic SDK 0.x (older notebooks pin it): the same job,
through the same simulator, gives the same columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    import anthropic, pandas as pd
    import batch_magic as bm
    from batch_magic.simulator import Simulator
    with Simulator(processing_time=0.2) as sim, tempfile.TemporaryDirectory() as d:
        sim.add_fault("results", None, drop_after_lines=1, times=1)
        df = pd.DataFrame({"review": ["I love it", None, "broken and late", "I love it"]})
        job = bm.submit(df, "Sentiment: {{ review }}", out="s", labels="positive,negative,neutral",
                        client=anthropic.Anthropic(api_key="sk-sim", base_url=sim.url), journal=d)
        job.wait(60)
        print(json.dumps({"sdk": anthropic.__version__, "s": df["s"].astype(object).where(df["s"].notna(), None).tolist(),
                          "status": df["s_status"].astype(str).tolist()}))
    """
)


#: What a model accepts under SDK 0.x, which sends anthropic-version 2023-06-01.
MODELS_SCRIPT = textwrap.dedent(
    """
    import json, tempfile
    import anthropic, pandas as pd
    import batch_magic as bm
    from batch_magic.client import BatchClient
    from batch_magic.errors import ConfigError
    from batch_magic.simulator import Simulator
    with Simulator(processing_time=0.0) as sim, tempfile.TemporaryDirectory() as d:
        client = anthropic.Anthropic(api_key="sk-sim", base_url=sim.url, max_retries=0)
        df = pd.DataFrame({"review": ["I love it", "broken and late"]})
        refused = None
        try:
            bm.submit(df, "{{ review }}", extra_params={"temperature": 0.5}, client=client, journal=d)
        except ConfigError as exc:
            refused = str(exc)
        creates_after_refusal = sum(r.endpoint == "create" for r in sim.requests)
        job = bm.submit(df, "Sentiment: {{ review }}", out="s", labels="positive,negative,neutral",
                        effort="low", client=client, journal=d)
        job.wait(60)
        print(json.dumps({
            "version": BatchClient(client).api_version, "refused": refused,
            "creates_after_refusal": creates_after_refusal,
            "asked": [r.endpoint for r in sim.requests].count("model"),
            "params": job.record.options.shared_params(),
            "s": df["s"].astype(str).tolist(),
        }))
    """
)


def _run_with_sdk0(sdk0_python, tmp_path, text):
    # This interpreter's packages, with the 0.x SDK (and its httpx) in front.
    site = subprocess.run(
        [str(sdk0_python), "-c", "import anthropic, os; print(os.path.dirname(os.path.dirname(anthropic.__file__)))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    script = tmp_path / "job.py"
    script.write_text(text)
    env = {**os.environ, "PYTHONPATH": site}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_model_checks_through_sdk_0x(sdk0_python, tmp_path):
    report = _run_with_sdk0(sdk0_python, tmp_path, MODELS_SCRIPT)
    assert report["version"] == "2023-06-01"
    # The reason given is the one of the version this SDK sends, and nothing was created.
    assert "under API version 2023-06-01" in report["refused"] and "Claude 4.7-or-later" in report["refused"]
    assert report["creates_after_refusal"] == 0
    # The Models API answers through the 0.x SDK too: asked once, and what it said was used.
    assert report["asked"] == 1
    assert report["params"]["thinking"] == {"type": "disabled"}
    assert report["params"]["output_config"]["effort"] == "low"
    assert set(report["s"]) <= {"positive", "negative", "neutral"}


def test_a_job_through_sdk_0x(sdk0_python, tmp_path):
    report = _run_with_sdk0(sdk0_python, tmp_path, SCRIPT)
    assert report["sdk"].startswith("0.")
    assert report["s"] == ["positive", None, "negative", "positive"]
    assert report["status"] == ["succeeded", "skipped", "succeeded", "succeeded"]


#: Images through SDK 0.x: its file lists page by ``after_id`` (late 0.x releases have
#: ``client.files``, earlier ones ``client.beta.files`` only; either is used).
MEDIA_SCRIPT = textwrap.dedent(
    """
    import json, tempfile
    from pathlib import Path
    import anthropic, pandas as pd
    from PIL import Image
    import batch_magic as bm
    from batch_magic.journal import Journal
    from batch_magic.simulator import Simulator
    from batch_magic.uploads import Intent, UploadStore, server_key
    with Simulator(processing_time=0.0) as sim, tempfile.TemporaryDirectory() as d:
        client = anthropic.Anthropic(api_key="sk-sim", base_url=sim.url)
        paths = []
        for i, colour in enumerate(["red", "blue", "green"] * 30):
            path = Path(d) / f"p{i}.png"
            Image.new("RGB", (10 + i, 10), colour).save(path)
            paths.append(str(path))
        df = pd.DataFrame({"photo": paths})
        journal = Journal(Path(d) / "journal")
        job = bm.submit(df, "{{ image(photo) }} Colour?", labels="red,blue,green", client=client,
                        journal=journal, start=False)
        # An upload that landed before a crash: found through the 0.x listing, not sent again.
        item = list(journal.read_media(job.id).values())[-1]
        UploadStore(journal).write_intent(server_key(sim.url),
                                          Intent(item.sha256, item.upload_name, item.size, "2020-01-01T00:00:00Z"))
        client.beta.files.upload(file=(item.upload_name, Path(item.path).read_bytes(), item.mime))
        job.start()
        job.wait(60)
        uploads = [r for r in sim.requests if r.endpoint == "file_upload"]
        print(json.dumps({
            "answers": df["answer"].astype(str).tolist(),
            "uploads": len(uploads),
            "on_server": len(sim.file_ids()),
        }))
    """
)


def test_images_through_sdk_0x(sdk0_python, tmp_path):
    report = _run_with_sdk0(sdk0_python, tmp_path, MEDIA_SCRIPT)
    assert report["answers"] == ["red", "blue", "green"] * 30
    # 89 uploaded by the job, 1 by the "crashed" driver before it; none twice.
    assert report["uploads"] == 90 and report["on_server"] == 90
