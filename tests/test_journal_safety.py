"""A journal is data, never code: the index round-trips as data, an old pickled
index is never loaded unless the user trusts it, and a journal from elsewhere
cannot lead batch_magic outside its folder."""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

import batch_magic as bm
from _jobs import FAST
from batch_magic.errors import JournalError, MergeError
from batch_magic.journal import Journal
from batch_magic.simulator import Simulator

PACKAGE = Path(bm.__file__).resolve().parent

INDEXES = {
    "range": pd.RangeIndex(2, 14, 3, name="r"),
    "ints with duplicates": pd.Index([3, 1, 3, 2]),
    "strings": pd.Index(["a", "b", "a", "c"], name="key"),
    "object with None": pd.Index(["a", None, "b", "a"], dtype=object),
    "floats with NaN": pd.Index([1.5, np.nan, 1.5, -0.0]),
    "datetime with tz": pd.DatetimeIndex(
        ["2024-03-31 01:30", "2024-03-31 03:30", "2024-10-27 02:30", "2024-03-31 01:30"], name="when"
    ).tz_localize("Europe/Paris", ambiguous=np.array([True, True, True, True])),
    "datetime ns, NaT": pd.DatetimeIndex(["2024-01-01 10:00:00.123456789", "NaT", "2024-01-01", "2024-01-01"]),
    "datetime in seconds": pd.DatetimeIndex(["2024-01-01", "2023-01-01", "2024-01-01", "2022-05-05"]).as_unit("s"),
    "timedelta": pd.to_timedelta(["1h", "2h", "1h", "3D"]),
    "period": pd.period_range("2024-01", periods=4, freq="M"),
    "categorical, ordered": pd.CategoricalIndex(["x", "y", "x", "x"], categories=["y", "x", "z"], ordered=True, name="c"),
    "categorical of ints": pd.CategoricalIndex([1, 2, 1, 1]),
    "nullable ints": pd.Index([1, 2, None, 2], dtype="Int64"),
    "string dtype": pd.Index(["a", "b", "b", None], dtype="string"),
    "mixed python types": pd.Index([1, "a", 2.5, None], dtype=object),
    "multiindex with tz, categorical, names": pd.MultiIndex.from_arrays(
        [
            pd.DatetimeIndex(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-01"], tz="UTC"),
            pd.CategoricalIndex(["u", "v", "u", "u"]),
            [1, 2, 1, 1],
        ],
        names=["t", None, ("a", 1)],
    ),
    "multiindex, repeated level names": pd.MultiIndex.from_tuples(
        [("a", 1), ("b", 2), ("a", 1), ("c", 0)], names=["g", "g"]
    ),
    "int name": pd.Index([10, 20, 30, 40], name=0),
}


@pytest.mark.parametrize("kind", list(INDEXES))
def test_index_round_trips_exactly_through_a_fresh_journal(tmp_path, kind):
    index = INDEXES[kind]
    rows = np.arange(len(index), dtype=np.int64)
    Journal(tmp_path).write_plan_data("20260101-000000-abcdef01", ["p"] * len(index), rows, index)
    back = Journal(tmp_path).read_index("20260101-000000-abcdef01")
    assert isinstance(back, pd.Index)
    pd.testing.assert_index_equal(back, index, exact=True, check_categorical=True, check_exact=True)
    assert list(back.names) == list(index.names)
    assert not list(tmp_path.rglob("*.pkl"))


def test_index_round_trips_into_another_process(tmp_path):
    jr = Journal(tmp_path)
    for n, index in enumerate(INDEXES.values()):
        jr.write_plan_data(f"20260101-000000-{n:08d}", ["p"], np.arange(len(index)), index)
    script = textwrap.dedent(
        """
        import pickle, sys
        from batch_magic.journal import Journal
        jr = Journal(sys.argv[1])
        out = [jr.read_index(j) for j in jr.job_ids() or sorted(p.name for p in jr.jobs_dir.iterdir())]
        sys.stdout.buffer.write(pickle.dumps(out))  # the test's own process reads this
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, check=True)
    read = pickle.loads(done.stdout)  # output of the test's own child process
    for index, back in zip(INDEXES.values(), read):
        pd.testing.assert_index_equal(back, index, exact=True, check_categorical=True)


# -- an old journal's pickled index -----------------------------------------------------
class _Booby:
    """Unpickling this creates a marker file: what a malicious index.pkl could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _booby_trapped_job(sim, tmp_path, df):
    """A finished job whose index is replaced by a crafted index.pkl, as an old journal
    from elsewhere would hold it."""
    jr = Journal(tmp_path / "journal")
    job = bm.submit(df, "{{ text }}", out="x", client=sim.client(), journal=jr, settings=FAST, max_tokens=20)
    job.wait(30)
    folder = jr.job_dir(job.id)
    for name in ("index.json", "index.parquet"):
        (folder / name).unlink(missing_ok=True)
    marker = tmp_path / "PWNED"
    (folder / "index.pkl").write_bytes(pickle.dumps(_Booby(str(marker))))
    for col in [c for c in df.columns if c.startswith("x")]:
        del df[col]
    return jr, job.id, marker


def test_a_crafted_index_pkl_is_never_executed_by_attach_merge_or_retry(sim, tmp_path):
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=["k1", "k2", "k3"])
    jr, job_id, marker = _booby_trapped_job(sim, tmp_path, df)

    # The same number of rows, but the labels cannot be read: never merged by position
    # silently; the error gives both ways out.
    with pytest.raises(MergeError) as err:
        bm.attach(job_id, df, journal=jr, client=sim.client(), settings=FAST).wait(30)
    assert f"%batch trust {job_id}" in str(err.value)
    assert "--by-position" in str(err.value) and "by_position=True" in str(err.value)
    assert "x" not in df.columns
    # Asked for by position: row i into row i, nothing executed.
    bm.attach(job_id, df, journal=jr, settings=FAST, by_position=True).wait(30)
    assert (df["x_status"] == "succeeded").all() and df["x"].str.contains("b").iloc[1]
    # Without a DataFrame: the columns alone, by position.
    alone = bm.attach(job_id, journal=jr, settings=FAST).wait(30)
    assert len(alone) == 3
    # A changed frame cannot be matched by labels, nor by position: refused.
    fewer = df.iloc[[2, 0]].drop(columns=[c for c in df.columns if c.startswith("x")])
    with pytest.raises(MergeError, match="by position"):
        bm.attach(job_id, fewer, journal=jr, settings=FAST, by_position=True).wait(30)
    # Retrying failed rows needs the rows matched too: refused, still nothing executed.
    with pytest.raises(MergeError, match="--by-position"):
        bm.retry_failed(job_id, df, journal=jr, client=sim.client(), settings=FAST)
    assert not marker.exists()
    assert (jr.job_dir(job_id) / "index.pkl").exists()  # kept until the user trusts it


def test_trusting_converts_a_real_old_index_and_then_labels_merge(sim, tmp_path):
    idx = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-02", "2024-01-03"], tz="Asia/Tokyo", name="t")
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=idx)
    jr, job_id, _ = _booby_trapped_job(sim, tmp_path, df)
    (jr.job_dir(job_id) / "index.pkl").write_bytes(pickle.dumps(idx))  # what format 1 wrote
    later = df.iloc[[2, 0]].copy()
    job = bm.attach(job_id, later, journal=jr, settings=FAST, trust_pickle=True)
    job.wait(30)
    assert later["x"].tolist()[0].count("c") and later["x_status"].eq("succeeded").all()
    assert not (jr.job_dir(job_id) / "index.pkl").exists()
    pd.testing.assert_index_equal(Journal(jr.root).read_index(job_id), idx, exact=True)


def test_trust_is_what_runs_a_pickle_and_a_non_index_is_refused(sim, tmp_path):
    df = pd.DataFrame({"text": ["a", "b"]})
    jr, job_id, marker = _booby_trapped_job(sim, tmp_path, df)
    with pytest.raises(JournalError, match="does not hold a pandas index"):
        jr.trust_pickled_index(job_id)
    assert marker.exists()  # only because it was asked for by name


def test_the_magic_trust_command_converts_and_says_why(ip, tmp_path):
    root = Path(os.environ["BATCH_MAGIC_DIR"])
    shutil.copytree(Path(__file__).parent / "fixtures" / "journal_v1", root)
    job_id = "20261202-025624-03c397d1"
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        ip.run_cell(f"%batch trust {job_id[:18]}")
    assert "runs the code a pickle holds" in out.stdout
    assert not (root / "jobs" / job_id / "index.pkl").exists()
    back = Journal(root).read_index(job_id)
    assert isinstance(back, pd.Index) and str(back.tz) == "Europe/Paris" and back.name == "when"



def test_the_magics_list_an_unreadable_job_and_merge_by_position_only_when_told(ip, tmp_path):
    root = Path(os.environ["BATCH_MAGIC_DIR"])
    shutil.copytree(Path(__file__).parent / "fixtures" / "journal_v1", root)
    job_id = "20261202-025624-03c397d1"  # its index is an untrusted pickle
    broken = next(p for p in (root / "jobs").iterdir() if p.name != job_id)
    (broken / "manifest.json").write_bytes(b'{"version": 2, "job_')
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        ip.run_cell("%batch list")
    assert f"Job {broken.name} cannot be read" in out.stdout and "manifest.json" in out.stdout
    ip.user_ns["df"] = pd.DataFrame({"text": ["a", "b", "c"]})
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--by-position"):
        ip.run_cell(f"%batch attach {job_id} df --wait")
    assert ip.user_ns["df"].columns.tolist() == ["text"]
    with capture_output() as out:
        ip.run_cell(f"%batch attach {job_id} df --wait --by-position")
    assert ip.user_ns["df"].filter(like="_status").shape[1] == 1, out.stdout + out.stderr

# -- nothing in the package loads code from a file ------------------------------------------
#: (module path, function) of the one call that may unpickle: the user's explicit trust.
ALLOWED = {("journal.py", "_unpickle_trusted_index", "pickle.loads")}
BANNED_CALLS = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads",
    "pd.read_pickle", "pandas.read_pickle", "read_pickle", "marshal.load", "marshal.loads",
    "shelve.open", "dill.load", "dill.loads", "joblib.load", "cloudpickle.load", "cloudpickle.loads",
    "eval", "exec", "compile", "__import__", "jsonpickle.decode", "yaml.load", "yaml.unsafe_load",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def test_no_module_loads_code_from_a_file():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            short = name.rsplit(".", 1)[-1]
            banned = name in BANNED_CALLS or short in {"read_pickle", "loads_pickle"}
            if name.endswith(".load") or short == "load":
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        banned = True
            if short == "read_pickle":
                banned = True
            if not banned:
                continue
            func = node
            while func in parents and not isinstance(func, ast.FunctionDef):
                func = parents[func]
            where = func.name if isinstance(func, ast.FunctionDef) else "<module>"
            found.add((str(path.relative_to(PACKAGE)), where, name))
    assert found == ALLOWED
    # ... and that function is called from trust_pickled_index alone.
    source = (PACKAGE / "journal.py").read_text()
    assert source.count("_unpickle_trusted_index(") == 2  # its definition and one call


def test_rows_are_loaded_without_pickle(tmp_path):
    jr = Journal(tmp_path)
    job = "20260101-000000-abcdef01"
    jr.write_plan_data(job, ["p"], np.zeros(1, dtype=np.int64), pd.RangeIndex(1))
    np.save(jr.job_dir(job) / "rows.npy", np.array([_Booby(str(tmp_path / "m"))], dtype=object), allow_pickle=True)
    with pytest.raises(JournalError, match="row map"):
        jr.read_rows(job)
    assert not (tmp_path / "m").exists()


# -- a journal from elsewhere cannot lead outside its folder ----------------------------------
def _finished_job(sim, tmp_path):
    jr = Journal(tmp_path / "journal")
    df = pd.DataFrame({"text": ["a", "b"]})
    job = bm.submit(df, "{{ text }}", client=sim.client(), journal=jr, settings=FAST, max_tokens=20)
    job.wait(30)
    return jr, job.id


def _manifest_path(jr, job_id):
    return jr.job_dir(job_id) / "manifest.json"


def test_an_unparsable_manifest_is_refused_by_name(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    _manifest_path(jr, job_id).write_bytes(b"{not json")
    with pytest.raises(JournalError, match=r"manifest\.json") as err:
        bm.attach(job_id, journal=jr)
    assert "unreadable" in str(err.value)


def test_a_batch_id_that_climbs_out_is_refused_and_nothing_outside_is_touched(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    outside = tmp_path / "outside.jsonl"
    outside.write_text("precious\n")
    path = _manifest_path(jr, job_id)
    manifest = orjson.loads(path.read_bytes())
    manifest["batches"][0]["batch_id"] = "../../../outside"
    path.write_bytes(orjson.dumps(manifest))
    with pytest.raises(JournalError, match="not a batch id"):
        bm.attach(job_id, journal=jr, client=sim.client(), settings=FAST).wait(30)
    assert outside.read_text() == "precious\n"


def test_symlinks_leaving_the_job_folder_are_refused(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    results = jr.job_dir(job_id) / "results"
    batch_file = next(results.glob("*.jsonl"))
    batch_file.unlink()
    batch_file.symlink_to(outside / "secret.txt")
    with pytest.raises(JournalError, match="is a symlink inside the journal"):
        bm.attach(job_id, journal=jr, settings=FAST).wait(30)
    # A whole job folder that is a link to elsewhere.
    shutil.copytree(jr.job_dir(job_id), outside / "job")
    linked = jr.jobs_dir / "20260101-000000-11111111"
    linked.symlink_to(outside / "job")
    with pytest.raises(JournalError, match="is a symlink inside the journal"):
        bm.attach("20260101-000000-11111111", journal=jr, settings=FAST)
    assert (outside / "secret.txt").read_text() == "secret"


def test_a_job_id_with_a_path_in_it_is_refused(tmp_path):
    jr = Journal(tmp_path / "journal")
    for bad in ("../x", "/etc", "a/../../b"):
        with pytest.raises(JournalError):
            jr.job_dir(bad)


# -- through a real kernel restart ------------------------------------------------------------
FRAME = """\
import pandas as pd
when = pd.DatetimeIndex(["2024-03-01 09:00", "2024-03-01 09:00", "2024-07-01 18:30", "2024-07-01 18:30"]).tz_localize("America/New_York")
kind = pd.CategoricalIndex(["bug", "ask", "bug", "ask"], categories=["ask", "bug", "spam"], ordered=True)
df = pd.DataFrame({"review": ["alpha one", "bravo two", "charlie three", "delta four"]},
                  index=pd.MultiIndex.from_arrays([when, kind], names=["when", "kind"]))
"""


@pytest.mark.slow
def test_a_tz_categorical_multiindex_survives_a_kernel_restart(tmp_path, kernel_specs):
    from _kernels import THIS_KERNEL
    from test_kernel_e2e import WAIT_CELL, Kernel, kernel_env

    with Simulator(processing_time=0.2) as sim:
        env = kernel_env(sim, tmp_path / "journal")
        with Kernel(kernel_specs, THIS_KERNEL, tmp_path, env) as k:
            k.run("%load_ext batch_magic")
            k.run(FRAME)
            k.run("%%batch df --out x\nSummarise: {{ review }}")
            cell, _ = k.run(WAIT_CELL)
            assert "STATE done True" in k.text(cell), k.text(cell)
        with Kernel(kernel_specs, THIS_KERNEL, tmp_path, env) as k:
            k.run("%load_ext batch_magic")
            k.run(FRAME + "later = df.iloc[[3, 0, 2]].copy()")
            k.run("%batch attach last later")
            k.run(WAIT_CELL)
            cell, _ = k.run(
                "import batch_magic\n"
                "alone = batch_magic.attach('last').wait()\n"
                "pd.testing.assert_index_equal(alone.index, df.index, exact=True)\n"
                "print('ALIGNED', all(r.split()[-1] in a for r, a in zip(later['review'], later['x'])),"
                " later['x_status'].tolist())"
            )
            assert "ALIGNED True ['succeeded', 'succeeded', 'succeeded']" in k.text(cell), k.text(cell)
    assert not list((tmp_path / "journal").rglob("*.pkl"))


# -- a journal from elsewhere: numbers, files that disagree, unreadable jobs, links ------------
def _creates(sim) -> int:
    """Batch creates the simulator has seen."""
    return sum(
        1 for r in sim.requests if r.method == "POST" and r.path.split("?")[0].endswith("/messages/batches")
    )


def _edit_manifest(jr, job_id, **changes):
    path = _manifest_path(jr, job_id)
    manifest = orjson.loads(path.read_bytes())
    manifest.update(changes)
    path.write_bytes(orjson.dumps(manifest))


TEXTS = pd.DataFrame({"text": ["a", "b"]})


def test_a_truncated_manifest_is_listed_and_its_rerun_refused_not_paid_again(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    path = _manifest_path(jr, job_id)
    path.write_bytes(path.read_bytes()[:40])
    listed = bm.jobs(jr)
    row = listed.set_index("job_id").loc[job_id]
    assert row["state"] == "unreadable" and "manifest.json" in row["error"]
    sent = _creates(sim)
    with pytest.raises(JournalError) as err:
        bm.submit(TEXTS.copy(), "{{ text }}", client=sim.client(), journal=jr, settings=FAST, max_tokens=20)
    assert job_id in str(err.value) and "--force" in str(err.value) and "remove" in str(err.value)
    assert _creates(sim) == sent
    # Asked for: a new job, whose answers the journal's answer store still has (nothing paid again) ...
    forced = bm.submit(TEXTS.copy(), "{{ text }}", client=sim.client(), journal=jr, settings=FAST, max_tokens=20, force=True)
    forced.wait(30)
    assert _creates(sim) == sent and forced.status.n_reused == 2
    # ... or, fresh, sent again.
    bm.submit(TEXTS.copy(), "{{ text }}", client=sim.client(), journal=jr, settings=FAST, max_tokens=20, fresh=True).wait(30)
    assert _creates(sim) == sent + 1


@pytest.mark.parametrize("field", ["n_rows", "n_requests"])
def test_huge_counts_in_a_manifest_are_a_journal_error_not_a_memory_error(sim, tmp_path, field):
    jr, job_id = _finished_job(sim, tmp_path)
    _edit_manifest(jr, job_id, **{field: 2**62})
    with pytest.raises(JournalError, match="manifest"):
        bm.attach(job_id, TEXTS.copy(), journal=jr, settings=FAST).wait(30)
    sent = _creates(sim)
    with pytest.raises(JournalError, match=job_id):
        bm.submit(TEXTS.copy(), "{{ text }}", client=sim.client(), journal=jr, settings=FAST, max_tokens=20)
    assert _creates(sim) == sent


def test_counts_that_disagree_with_the_job_files_name_the_file(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    manifest = orjson.loads(_manifest_path(jr, job_id).read_bytes())
    # Consistent with each other, not with rows.npy.
    _edit_manifest(jr, job_id, n_rows=3, n_skipped=manifest["n_skipped"] + 1)
    with pytest.raises(JournalError, match=r"rows\.npy"):
        bm.attach(job_id, TEXTS.copy(), journal=jr, settings=FAST)


@pytest.mark.parametrize(
    "meta",
    [{"layout": 1, "range": [0, 10**18, 1], "names": [None]}, {"layout": 1, "range": [0, 1, 1], "names": [None]}],
)
def test_a_stored_index_of_another_length_is_refused(sim, tmp_path, meta):
    jr, job_id = _finished_job(sim, tmp_path)
    (jr.job_dir(job_id) / "index.json").write_bytes(orjson.dumps(meta))
    df = TEXTS.copy()
    with pytest.raises(JournalError, match=r"index\.json"):
        bm.attach(job_id, df, journal=jr, settings=FAST).wait(30)
    assert "text_status" not in df.columns and "answer_status" not in df.columns


def test_a_schema_in_a_manifest_that_refers_outside_is_refused_by_name(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string"}')
    schema = {"type": "object", "properties": {"a": {"$ref": secret.as_uri()}}, "required": ["a"]}
    _edit_manifest(jr, job_id, output={"kind": "schema", "labels": [], "schema": schema})
    opened = []
    sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
    with pytest.raises(JournalError, match="file://"):
        bm.attach(job_id, TEXTS.copy(), journal=jr, settings=FAST).wait(30)
    assert str(secret) not in opened


def test_a_symlinked_uploads_folder_or_record_is_refused(tmp_path):
    from batch_magic.uploads import UploadStore

    jr = Journal(tmp_path / "journal")
    store = UploadStore(jr)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = "https://api.anthropic.com"
    folder = store.folder(url)  # made by the store itself
    shutil.rmtree(folder)
    folder.symlink_to(elsewhere)
    with pytest.raises(JournalError, match="symlink"):
        UploadStore(jr).folder(url)
    assert not list(elsewhere.iterdir())
    # A record that is a link to a file elsewhere is not read through.
    folder.unlink()
    store = UploadStore(jr)
    sha = "0" * 64
    (elsewhere / "record.json").write_text("{}")
    (store.folder(url) / f"{sha}.json").symlink_to(elsewhere / "record.json")
    with pytest.raises(JournalError, match="symlink"):
        store.get(url, sha)


def test_the_simulator_keeps_and_reads_its_batches_through_no_link(tmp_path):
    """The simulator's kept batches live in the journal folder too (``simulator/``)."""
    import anthropic

    state = tmp_path / "state"
    with Simulator(state_dir=state, processing_time=0) as sim:
        c = anthropic.Anthropic(api_key="sk-test", base_url=sim.url, max_retries=0)
        params = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        kept = c.messages.batches.create(requests=[{"custom_id": "a", "params": params}]).id
        altered = c.messages.batches.create(requests=[{"custom_id": "b", "params": params}]).id
    batches = state / "batches"
    meta = orjson.loads((batches / f"{altered}.json").read_bytes())
    (batches / f"{altered}.json").write_bytes(orjson.dumps({**meta, "n": 2**62}))
    outside = tmp_path / "outside.json"
    outside.write_bytes((batches / f"{kept}.json").read_bytes())
    (batches / f"{kept}.json").unlink()
    (batches / f"{kept}.json").symlink_to(outside)
    with Simulator(state_dir=state, processing_time=0) as sim:
        assert sim.batch_ids() == []  # a linked file and an altered count: neither loaded
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(batches)
    batches.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="symlink"):
        Simulator(state_dir=state)
    assert not list(elsewhere.iterdir())


@pytest.mark.parametrize(
    "template",
    [
        "{{ text.__class__.__init__.__globals__ }}",
        "{{ text.upper.__self__.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
        "{{ '{0.__class__.__init__.__globals__}'.format(text) }}",
    ],
)
def test_a_crafted_template_in_a_manifest_runs_nothing_on_retry(sim, tmp_path, monkeypatch, template):
    """The retry renders the manifest's template: in the sandbox, after its names are checked."""
    from batch_magic.errors import TemplateError

    monkeypatch.chdir(tmp_path)
    jr, job_id = _finished_job(sim, tmp_path)
    _edit_manifest(jr, job_id, template=template)
    df = TEXTS.copy()
    df["answer_status"] = ["errored", "succeeded"]  # one row to retry: its template is rendered
    sent = _creates(sim)
    with pytest.raises(TemplateError, match=job_id):
        bm.retry_failed(job_id, df, journal=jr, client=sim.client(), settings=FAST)
    assert _creates(sim) == sent
    assert not list(tmp_path.rglob("MARKER"))


def test_a_fifo_in_place_of_a_journal_file_is_refused_not_waited_on(sim, tmp_path):
    jr, job_id = _finished_job(sim, tmp_path)
    manifest = _manifest_path(jr, job_id)
    manifest.unlink()
    os.mkfifo(manifest)
    listed = bm.jobs(jr).set_index("job_id").loc[job_id]
    assert listed["state"] == "unreadable" and "not a regular file" in listed["error"]


def test_labels_that_cannot_be_stored_merge_into_the_same_labels_only(sim, tmp_path):
    """Labels of a type kept as data by neither Parquet nor tagged scalars: the job keeps a
    digest of them, so its own DataFrame still merges, a reordered one is refused."""
    jr = Journal(tmp_path / "journal")
    index = pd.Index([frozenset({1}), frozenset({2}), frozenset({3})], dtype=object)
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=index)
    job = bm.submit(df, "{{ text }}", out="x", client=sim.client(), journal=jr, settings=FAST, max_tokens=20)
    job.wait(30)
    assert (df["x_status"] == "succeeded").all()
    assert not isinstance(jr.read_index(job.id), pd.Index)  # not stored: only its digest
    reordered = df[["text"]].iloc[::-1].copy()
    with pytest.raises(MergeError, match="--by-position"):
        bm.attach(job.id, reordered, journal=jr, settings=FAST).wait(30)
    assert reordered.columns.tolist() == ["text"]
