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


def test_a_job_through_sdk_0x(sdk0_python, tmp_path):
    # This interpreter's packages, with the 0.x SDK (and its httpx) in front.
    site = subprocess.run(
        [str(sdk0_python), "-c", "import anthropic, os; print(os.path.dirname(os.path.dirname(anthropic.__file__)))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": site}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["sdk"].startswith("0.")
    assert report["s"] == ["positive", None, "negative", "positive"]
    assert report["status"] == ["succeeded", "skipped", "succeeded", "succeeded"]
