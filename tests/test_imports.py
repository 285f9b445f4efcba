"""Imports follow use: a module loads what its job needs, and a heavy library loads
when a job first needs it. ``jsonschema`` (whose import compiles the grammars of its
format checkers: seconds in an environment with JupyterLab) is a schema job's alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def run(script: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_a_plain_text_job_in_a_new_process_never_imports_jsonschema(simulator, tmp_path):
    journal = str(tmp_path / "j")
    lines = run(
        f"""
        import sys
        import anthropic
        import pandas as pd
        import batch_magic as bm
        client = anthropic.Anthropic(api_key="sk-test", base_url={simulator.url!r})
        df = pd.DataFrame({{"text": ["a b", "c d", None]}})
        out = bm.submit(df, "{{{{ text }}}}", client=client, journal={journal!r}, max_tokens=20).wait(60)
        assert out["answer_status"].tolist() == ["succeeded", "succeeded", "skipped"]
        labels = bm.submit(df, "{{{{ text }}}}", out="l", labels=["a", "b"], client=client, journal={journal!r},
                           max_tokens=20).wait(60)
        bm.attach("last", journal={journal!r}).wait(30)
        print("jsonschema" in sys.modules, "referencing" in sys.modules)
        # A server of another process: the simulator package is not this job's business.
        print("batch_magic.simulator" in sys.modules)
        schema = {{"type": "object", "properties": {{"w": {{"type": "string"}}}}, "required": ["w"]}}
        bm.submit(df, "{{{{ text }}}}", out="s", schema=schema, client=client, journal={journal!r},
                  max_tokens=20).wait(60)
        print("jsonschema" in sys.modules)
        """
    )
    assert lines[-3:] == ["False False", "False", "True"]  # a schema job loads it, and only then


def test_a_text_job_in_a_journal_that_holds_a_schema_job_never_imports_jsonschema(simulator, tmp_path):
    """Reading a schema job's manifest (listing the journal, looking for an identical job)
    checks its schema's shape and references without jsonschema: a kernel restarted in a
    folder that once ran a schema job still starts its plain-text jobs light."""
    journal = str(tmp_path / "j")
    schema = {"type": "object", "properties": {"w": {"type": "string"}}, "required": ["w"]}
    run(
        f"""
        import anthropic
        import pandas as pd
        import batch_magic as bm
        client = anthropic.Anthropic(api_key="sk-test", base_url={simulator.url!r})
        df = pd.DataFrame({{"text": ["a b", "c d"]}})
        bm.submit(df, "{{{{ text }}}}", out="s", schema={schema!r}, client=client, journal={journal!r},
                  max_tokens=20).wait(60)
        """
    )
    (line,) = run(
        f"""
        import sys
        import anthropic
        import pandas as pd
        import batch_magic as bm
        client = anthropic.Anthropic(api_key="sk-test", base_url={simulator.url!r})
        df = pd.DataFrame({{"text": ["a b", "c d"]}})
        bm.jobs({journal!r})
        out = bm.submit(df, "{{{{ text }}}}", client=client, journal={journal!r}, max_tokens=20).wait(60)
        assert out["answer_status"].tolist() == ["succeeded", "succeeded"]
        print("jsonschema" in sys.modules)
        """
    )
    assert line == "False"


@pytest.mark.parametrize("module", ["format", "states", "options", "settings", "codec"])
def test_the_light_modules_import_neither_pandas_nor_jsonschema(module):
    (line,) = run(
        f"""
        import sys
        import batch_magic.{module}
        print(sorted(m for m in ("pandas", "jsonschema", "pyarrow", "polars") if m in sys.modules))
        """
    )
    assert line == "[]"


def test_answers_are_validated_without_format_checkers():
    from batch_magic.validation import row_validator

    schema = {"type": "object", "properties": {"mail": {"type": "string", "format": "email"}}, "required": ["mail"]}
    validate = row_validator(schema)
    # "format" describes the answer (the API constrains it when it sends); it is not re-judged here.
    assert validate({"mail": "not a mail address"}, "")[1] is None
    assert "is not of type 'string'" in (validate({"mail": 3}, "")[1] or "")
