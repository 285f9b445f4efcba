"""A journal from elsewhere, mutated as an attacker (or a bad zip) would: every public
way in (attach, re-running the identical cell, retry_failed, jobs(), a merge by labels)
runs no code, opens nothing outside the journal, fails with a BatchMagicError naming
the job or its file, and sends nothing twice.

Each example copies one real journal (a small schema job run through the session
simulator), applies a few mutations, and runs every operation on it.
"""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batch_magic as bm
from _jobs import fast
from batch_magic.errors import BatchMagicError
from batch_magic.journal import Journal

FAST = fast(poll_min=0.02, poll_max=0.1, backoff_min=0.02, backoff_max=0.1)
SCHEMA = {"type": "object", "properties": {"mood": {"type": "string"}}, "required": ["mood"]}
TEMPLATE = "{{ text }}"
OUT = "x"
WORDS = ["calm", "storm", "sunny", "fog", "mist", "gale", "drizzle", "breeze"]
FRAME = pd.DataFrame({"text": WORDS}, index=list("abcdefgh"))

#: Files a real Python process reads besides the journal: the interpreter, the
#: installed packages (this package among them) and the time zone database.
_ALLOWED_FOLDERS = (sys.prefix, sys.base_prefix, sys.exec_prefix, Path(bm.__file__).parent, "/usr/share/zoneinfo")
ALLOWED = (*{os.path.realpath(p) + os.sep for p in _ALLOWED_FOLDERS}, "/etc/localtime", "/dev/urandom", "/dev/null")


# -- what the process opens ---------------------------------------------------------------------
@dataclass
class OpenLog:
    recording: bool = False
    paths: list[str] | None = None

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.recording or event != "open" or self.paths is None:
            return
        path, flags = args[0], args[2] if len(args) > 2 else 0
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return  # a descriptor (os.fdopen): its path was checked when it was opened
        path = os.path.abspath(path)
        # Where the open really lands: through links, unless the open refuses them.
        if not (isinstance(flags, int) and flags & os.O_NOFOLLOW):
            path = os.path.realpath(path)
        self.paths.append(path)


LOG = OpenLog()


@pytest.fixture(scope="module")
def open_log() -> OpenLog:
    if not getattr(sys, "_batch_magic_fuzz_hook", False):  # an audit hook cannot be removed: one a session
        sys.addaudithook(LOG.hook)
        sys._batch_magic_fuzz_hook = True  # type: ignore[attr-defined]
    return LOG


def _creates(sim) -> int:
    return sum(1 for r in sim.requests if r.method == "POST" and r.path.split("?")[0].endswith("/messages/batches"))


@pytest.fixture(scope="module")
def pristine(simulator_server, tmp_path_factory) -> tuple[Path, str]:
    """A real journal: one ended schema job over FRAME, some of whose rows errored (so a
    retry renders the manifest's template); its answers by label: ``ANSWERS``."""
    simulator_server.reset()
    simulator_server.configure(error_rates={"overloaded_error": 0.5})
    try:
        for _ in range(10):  # the simulator draws which requests error: until some do, and not all
            root = tmp_path_factory.mktemp("pristine") / "journal"
            job = bm.submit(
                FRAME.copy(), TEMPLATE, out=OUT, schema=SCHEMA, client=simulator_server.client(),
                journal=Journal(root), settings=FAST, max_tokens=50,
            )
            job.wait(60)
            result = job.result()
            if set(result[f"{OUT}_status"]) == {"succeeded", "errored"}:
                break
    finally:
        simulator_server.configure(error_rates={})
    assert set(result[f"{OUT}_status"]) == {"succeeded", "errored"}
    answered = result.loc[result[f"{OUT}_status"] == "succeeded", OUT]
    ANSWERS.update(answered.to_dict())
    assert len(set(ANSWERS.values())) == len(ANSWERS)  # each row's answer is its own
    return root, job.id


#: Each row's answer in the real journal, by its label.
ANSWERS: dict[str, str] = {}


# -- the mutations ------------------------------------------------------------------------------
BAD_VALUES = st.sampled_from(
    [None, True, -1, 0, 1, 3, 2**62, 10**18, -(2**63), 1.5, float("inf"), "", "x" * 5000, "../../outside",
     [], [1, 2], [-5], {}, {"a": 1}, {"__class__": "os.system"}]
)
MANIFEST_FIELDS = [
    "job_id", "fingerprint", "out", "template", "output", "options", "id_tag", "chunk_size", "n_rows",
    "n_requests", "n_skipped", "n_deduplicated", "batches", "state", "skip_reasons", "estimate", "usage",
    "row_counts", "columns", "sent_to", "n_media", "version", "actual_cost",
]
BATCH_FIELDS = ["n", "attempt", "size", "first", "stop", "ids", "batch_id", "state", "counts", "rejected"]
OPTION_FIELDS = ["model", "max_tokens", "system", "output_schema", "extra", "effort"]
MARKER = "MARKER"  # a file named so, anywhere, means code ran
CRAFTED_TEMPLATES = [
    "{{ text.__class__ }}",
    "{{ text.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__.__builtins__.open('MARKER', 'w') }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(text) }}",
    "{{ text.format_map({}) }}{{ '{x.__class__}'.format_map({'x': text}) }}",
    "{{ self.__init__.__globals__.__builtins__.exec('open(\"MARKER\",\"w\")') }}",
    "{{ request.application.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}{{ text }}",
    "{{ text|attr('__class__') }}",
    "{{ row.__class__.__init__.__globals__ }}",
]


@st.composite
def crafted_schemas(draw) -> dict[str, Any]:
    target = draw(st.sampled_from(["file://{outside}/secret.json", "http://127.0.0.1:9/schema.json", "{outside}/secret.json"]))
    keyword = draw(st.sampled_from(["$ref", "$dynamicRef", "$recursiveRef"]))
    nested = {"type": "object", "properties": {"mood": {keyword: target}}, "required": ["mood"]}
    with_id = {**nested, "$id": target}
    return draw(st.sampled_from([nested, with_id, {"$ref": target}]))


class Evil:
    """A pickle that would leave a marker if it were ever loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


MUTATION = st.one_of(
    st.tuples(st.just("field"), st.sampled_from(MANIFEST_FIELDS), BAD_VALUES),
    st.tuples(st.just("batch"), st.sampled_from(BATCH_FIELDS), BAD_VALUES),
    st.tuples(st.just("option"), st.sampled_from(OPTION_FIELDS), BAD_VALUES),
    st.tuples(st.just("template"), st.sampled_from(CRAFTED_TEMPLATES), st.none()),
    st.tuples(st.just("schema"), crafted_schemas(), st.none()),
    st.tuples(
        st.just("truncate"),
        st.sampled_from(["manifest.json", "prompts.json", "rows.npy", "index.json", "index.parquet", "results"]),
        st.floats(0, 0.95),
    ),
    st.tuples(
        st.just("index"),
        st.sampled_from([
            {"layout": 1, "range": [0, 10**18, 1], "names": [None]},
            {"layout": 1, "range": [0, 2, 1], "names": [None]},
            {"layout": 1, "range": [0, 4, 0], "names": [None]},
            {"layout": 1, "names": [None], "dtypes": ["object"], "tagged": {"0": [["str", "a"]] * 2}},
            {"layout": 1, "names": [None], "dtypes": ["object"], "tagged": {"0": [["pickle", "x"]] * 4}},
            {"layout": 1, "unstorable": "crafted", "names": [None]},
            "pickle",
        ]),
        st.none(),
    ),
    st.tuples(
        st.just("extra"),
        st.sampled_from(["index.pkl", "results/msgbatch_extra.jsonl", "media.json", "lock", "rows.npy.tmp"]),
        st.none(),
    ),
    st.tuples(
        st.just("symlink"),
        st.sampled_from([
            "jobs", "jobs/JOB", "jobs/JOB/manifest.json", "jobs/JOB/prompts.json", "jobs/JOB/rows.npy",
            "jobs/JOB/index.json", "jobs/JOB/index.parquet", "jobs/JOB/results", "jobs/JOB/results/BATCH",
            "jobs/JOB/lock", "jobs/JOB/media.json", "uploads",
        ]),
        st.none(),
    ),
)


def _mutate(root: Path, job_id: str, outside: Path, mutation: tuple[Any, ...]) -> None:
    kind, what, value = mutation
    folder = root / "jobs" / job_id
    manifest_path = folder / "manifest.json"

    def edit(change) -> None:
        if manifest_path.is_symlink() or not manifest_path.is_file():
            return
        try:
            data = orjson.loads(manifest_path.read_bytes())
        except orjson.JSONDecodeError:
            return  # truncated by an earlier mutation
        if not isinstance(data, dict):
            return
        change(data)
        manifest_path.write_bytes(orjson.dumps(data, default=str))

    if kind == "field":
        edit(lambda d: d.__setitem__(what, value))
    elif kind == "batch":
        edit(lambda d: isinstance(d.get("batches"), list) and d["batches"] and isinstance(d["batches"][0], dict)
             and d["batches"][0].__setitem__(what, value))
    elif kind == "option":
        edit(lambda d: isinstance(d.get("options"), dict) and d["options"].__setitem__(what, value))
    elif kind == "template":
        edit(lambda d: d.__setitem__("template", what))
    elif kind == "schema":
        schema = orjson.loads(orjson.dumps(what).decode().replace("{outside}", str(outside)))
        edit(lambda d: d.__setitem__("output", {"kind": "schema", "labels": [], "schema": schema}))
    elif kind == "truncate":
        paths = sorted((folder / "results").glob("*.jsonl")) if what == "results" else [folder / what]
        for path in paths:
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                path.write_bytes(data[: int(len(data) * value)])
    elif kind == "index":
        if what == "pickle":  # an old journal's index, booby-trapped
            for name in ("index.json", "index.parquet"):
                (folder / name).unlink(missing_ok=True)
            if folder.is_dir() and not folder.is_symlink():
                (folder / "index.pkl").write_bytes(pickle.dumps(Evil(str(outside / MARKER))))
        elif folder.is_dir() and not folder.is_symlink():
            (folder / "index.json").write_bytes(orjson.dumps(what))
    elif kind == "extra":
        target = folder / what
        if target.parent.is_dir() and not target.parent.is_symlink():
            target.unlink(missing_ok=True)
            data = pickle.dumps(Evil(str(outside / MARKER))) if what == "index.pkl" else b'{"custom_id": 1}\n\x00junk'
            target.write_bytes(data)
    elif kind == "symlink":
        results = sorted((folder / "results").glob("*.jsonl")) if (folder / "results").is_dir() else []
        rel = what.replace("JOB", job_id).replace("BATCH", results[0].name if results else "none.jsonl")
        path = root / rel
        if not path.parent.is_dir() or path.parent.is_symlink():
            return
        copy = outside / f"copy-{rel.replace('/', '_')}"
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, copy, symlinks=True)
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            if not copy.exists():
                shutil.copy(path, copy, follow_symlinks=False)
            path.unlink()
        else:
            copy.mkdir(exist_ok=True)
        path.symlink_to(copy)


# -- the operations -----------------------------------------------------------------------------
def _operations(sim, root: Path, job_id: str) -> list[tuple[str, Any]]:
    def attach():
        df = FRAME.copy()
        bm.attach(job_id, df, journal=Journal(root), client=sim.client(), settings=FAST).wait(60)

    def rerun():
        bm.submit(
            FRAME.copy(), TEMPLATE, out=OUT, schema=SCHEMA, client=sim.client(), journal=Journal(root),
            settings=FAST, max_tokens=50, wait=True,
        )

    def retry():
        job = bm.retry_failed(job_id, FRAME.copy(), journal=Journal(root), client=sim.client(), settings=FAST)
        job.wait(60)

    def listing():
        bm.jobs(Journal(root))

    def by_labels():
        df = FRAME.iloc[::-1].copy()  # reordered: rows are matched by their labels
        bm.attach(job_id, df, journal=Journal(root), client=sim.client(), settings=FAST).wait(60)
        # A label matched must carry its own row's answer, never another row's.
        answered = df.loc[df[f"{OUT}_status"] == "succeeded", OUT]
        assert all(answer == ANSWERS[label] for label, answer in answered.items()), answered

    return [("attach", attach), ("rerun", rerun), ("retry", retry), ("jobs", listing), ("by_labels", by_labels)]


COUNTER = itertools.count()


@settings(
    derandomize=True, max_examples=80, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_a_mutated_journal_runs_nothing_opens_nothing_outside_and_fails_clearly(
    simulator_server, pristine, open_log, tmp_path_factory, mutations
):
    source, job_id = pristine
    base = tmp_path_factory.getbasetemp() / f"fuzz{next(COUNTER)}"
    root, outside = base / "journal", base / "outside"
    shutil.copytree(source, root, symlinks=True)
    outside.mkdir()
    (outside / "secret.json").write_bytes(orjson.dumps({"type": "string"}))
    for mutation in mutations:
        _mutate(root, job_id, outside, mutation)
    fingerprint_changed = any(m[0] == "field" and m[1] == "fingerprint" for m in mutations)

    sim = simulator_server
    cwd = os.getcwd()
    os.chdir(base)  # a template that wrote its MARKER by a relative name would write it here
    try:
        for name, operation in _operations(sim, root, job_id):
            before = _creates(sim)
            open_log.paths = []
            open_log.recording = True
            try:
                operation()
            except BatchMagicError as exc:
                message = str(exc)
                assert job_id in message or str(root) in message, (name, mutations, message)
            finally:
                open_log.recording = False
            outside_opens = [
                p for p in open_log.paths
                if not Path(p).is_relative_to(root) and not Path(p).is_relative_to(os.path.realpath(root))
                and not p.startswith(ALLOWED)
            ]
            assert not outside_opens, (name, mutations, outside_opens)
            sent = _creates(sim) - before
            # An ended job is read from the journal alone. A retry is a new job over the rows
            # left without an answer (one batch); a re-run of a cell whose fingerprint the
            # journal no longer holds is a new job too.
            allowed = 1 if name == "retry" or (name == "rerun" and fingerprint_changed) else 0
            assert sent <= allowed, (name, mutations, sent)
    finally:
        os.chdir(cwd)
    assert not list(base.rglob(MARKER)), mutations
    assert not (Path(cwd) / MARKER).exists()


def test_the_pristine_journal_passes_every_operation_without_sending(simulator_server, pristine, tmp_path):
    """The baseline the mutations start from: every operation succeeds; only the retry
    sends (one batch, of the errored rows)."""
    source, job_id = pristine
    root = tmp_path / "journal"
    shutil.copytree(source, root, symlinks=True)
    for name, operation in _operations(simulator_server, root, job_id):
        before = _creates(simulator_server)
        operation()
        assert _creates(simulator_server) - before == (1 if name == "retry" else 0), name
