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
