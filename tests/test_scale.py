"""gaflow.scale on Ray: explain-dataset (scores, Parquet schema, resume, a killed worker, bad
rows, a cluster address, CLI errors) and bench --workers (the same table).

Ray runs locally with 2 CPUs: one in-process Ray for the module (started by the ``ray_local``
fixture, shut down at its end) and, for ``--address``, a head started with ``ray start --head
--block`` in its own process group, stopped by signal at the end of that test.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import saved_model

import gaflow
from gaflow import Explanation, InputError
from gaflow.cli import main
from gaflow.flow.constructions import DEFAULT_METHOD

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

from gaflow.scale.records import COLUMNS, schema  # noqa: E402

SENTENCES = [
    "a gorgeous, witty, seductive movie.", "although this dog is not cute, it is very smart.",
    "bad", "the film was dull", "a lifeless mess", "the movie is good", "not very good",
    "a smart film", "it was a great movie", "the dogs are cute", "this is not bad",
    "very dull and lifeless", "a witty dog", "the film is a mess", "gorgeous",
    "it is smart, although not great", "the movie was very bad", "cute film", "not dull",
    "this film, although a mess, is witty",
]
TOO_LONG = " ".join(["good"] * 80)  # the tiny models take 64 positions
INPUT = [*SENTENCES, "", TOO_LONG]  # 20 good rows, then 2 bad ones


def _ids(n: int | None = None) -> list[str]:
    return [f"ex{k:02d}" for k in range(len(INPUT) if n is None else n)]


@pytest.fixture(scope="module")
def tiny64(tiny_bert):
    """The tiny BERT in float64, as in test_explain's batch test: float32 rounding of
    differently padded batches (about 1e-6 relative in the scores) would hide a real leak."""
    model, tok = tiny_bert
    return copy.deepcopy(model).double(), tok


@pytest.fixture(scope="module")
def model_dir(tiny64, tmp_path_factory):
    return saved_model(tiny64, tmp_path_factory.mktemp("scale") / "tiny")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "texts.csv"
    pd.DataFrame({"uid": _ids(), "sentence": INPUT}).to_csv(path, index=False)
    return path


def _read(out) -> pd.DataFrame:
    return pd.read_parquet(out)


# --------------------------------------------- CLI errors (no Ray started: checked up front)


@pytest.mark.parametrize("args, match", [
    (["missing.csv"], "neither a file nor a known dataset"),
    (["{corpus}", "--text-column", "nope"], "has no column 'nope'"),
    (["{corpus}", "--text-column", "sentence", "--id-column", "x"], "has no column 'x'"),
    (["{corpus}", "--text-column", "sentence", "--split", "dev"], "--split applies"),
    (["{corpus}", "--text-column", "sentence", "--method", "magic"], "unknown method"),
    (["{corpus}", "--text-column", "sentence", "--workers", "0"], "workers must be"),
    (["{corpus}", "--text-column", "sentence", "--batch-size", "0"], "batch_size"),
    (["{corpus}", "--text-column", "sentence", "--address", "127.0.0.1:{port}"],
     "no Ray cluster answers"),
])
def test_cli_bad_input_exits_2(capsys, tmp_path, corpus, model_dir, args, match):
    args = [a.format(corpus=corpus, port=_free_port()) for a in args]
    rc = main(["explain-dataset", *args, "--out", str(tmp_path / "o"), "--model", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("gaflow: error: ") and match in last, err
    assert "Traceback" not in err


def test_cli_refuses_foreign_folder(capsys, tmp_path, corpus, model_dir):
    (tmp_path / "notes.txt").write_text("mine")
    rc = main(["explain-dataset", str(corpus), "--text-column", "sentence", "--out",
               str(tmp_path), "--model", str(model_dir)])
    assert rc == 2 and "did not write" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_record_round_trip_exact(tiny_bert):
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, "the dogs smartly")  # sub-words: word ids repeat
    rec = exp.to_record()
    assert Explanation.from_record(rec) == exp
    row = pd.DataFrame([rec]).iloc[0]  # numpy arrays in the list columns
    assert Explanation.from_record(row) == exp
    assert rec["words"] == [w for w, _ in exp.words()]


# ------------------------------------------------------------------ a cluster via --address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_address_joins_a_cluster(tmp_path, corpus, model_dir):
    """A head started here (``ray start --head --block``, own process group, stopped by signal:
    no other Ray on the machine is touched); the CLI joins it with --address."""
    assert not ray.is_initialized()
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a throw-away test cluster
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:  # the GCS port answers once the head is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.time() < deadline, "ray start failed"
                time.sleep(0.5)
        out = tmp_path / "out"
        run = subprocess.run(
            [sys.executable, "-m", "gaflow.cli", "explain-dataset", str(corpus), "--text-column",
             "sentence", "--id-column", "uid", "--out", str(out), "--model", str(model_dir),
             "--workers", "1", "--batch-size", "4", "--address", f"127.0.0.1:{port}",
             "--limit", "8"],
            env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "8 written (0 failed), 0 skipped" in run.stdout
        df = _read(out)
        assert sorted(df["id"]) == _ids(8) and df["error"].isna().all()
    finally:
        os.killpg(head.pid, signal.SIGINT)  # 'ray start --block' stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


# ------------------------------------------------------- in-process local Ray (2 CPUs)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the tests below (explain_dataset and bench reuse it)."""
    assert not ray.is_initialized()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def full_run(ray_local, corpus, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "out"
    summary = gaflow.explain_dataset(str(corpus), out, model=str(model_dir), workers=2,
                                     batch_size=4, text_column="sentence", id_column="uid")
    return summary, out


def test_same_scores_as_explain_one_by_one(full_run, tiny64):
    summary, out = full_run
    model, tok = tiny64
    df = _read(out).set_index("id")
    for k, text in enumerate(SENTENCES):
        row = df.loc[f"ex{k:02d}"]
        got = Explanation.from_record(row)
        alone = gaflow.explain(model, tok, text)
        assert got.tokens == alone.tokens and got.word_ids == alone.word_ids
        err = np.abs(got.scores - alone.scores).max()
        assert err <= 1e-6 * np.abs(alone.scores).max(), (text, err)  # relative: stricter
        assert got.target == alone.target and got.method == DEFAULT_METHOD
        assert got.probability == pytest.approx(alone.probability, abs=1e-6)
        assert got.config["n_tokens"] == alone.config["n_tokens"]


def test_bad_rows_reported_not_fatal(full_run):
    summary, out = full_run
    assert (summary.total, summary.written, summary.skipped, summary.failed) == (22, 22, 0, 2)
    df = _read(out).set_index("id")
    assert df["error"].notna().sum() == 2
    assert "empty" in df.loc["ex20", "error"]
    assert "more than the model's maximum" in df.loc["ex21", "error"]
    assert df.loc["ex21", "text"] == TOO_LONG and df.loc["ex21", "scores"] is None
    assert sorted(i for i, _ in summary.errors) == ["ex20", "ex21"]


def test_parquet_schema(full_run):
    _, out = full_run
    table = pq.read_table(out)
    assert table.schema.names == COLUMNS
    assert table.schema.equals(schema())
    assert ray.data.read_parquet(str(out)).count() == len(INPUT)
    stamp = json.loads((Path(out) / "_gaflow_run.json").read_text())
    assert stamp["method"] == DEFAULT_METHOD and stamp["input"]["text_column"] == "sentence"
    row = table.slice(0, 1).to_pylist()[0]
    assert json.loads(row["config"])["method"] == DEFAULT_METHOD
    assert len(row["words"]) == len(row["word_scores"])


def test_resume_and_killed_worker(ray_local, corpus, model_dir, tmp_path):
    """A partial run, then the rest with a worker that dies on one example (test hook: the
    actor's process exits): Ray restarts it and retries its batch; no row lost or doubled."""
    out, marker = tmp_path / "out", tmp_path / "crashed"
    kw = dict(model=str(model_dir), workers=2, batch_size=2, text_column="sentence",
              id_column="uid")
    first = gaflow.explain_dataset(str(corpus), out, limit=9, **kw)  # a partial run
    assert (first.written, first.skipped) == (9, 0)
    second = gaflow.explain_dataset(str(corpus), out, **kw,
                                    _crash={"id": "ex15", "marker": str(marker)})
    assert marker.exists(), "the test hook did not kill a worker"
    assert (second.written, second.skipped, second.failed) == (13, 9, 2)
    df = _read(out)
    assert sorted(df["id"]) == _ids() and df["id"].is_unique
    again = gaflow.explain_dataset(str(corpus), out, **kw)  # nothing left: Ray not started
    assert (again.written, again.skipped) == (0, 22)
    with pytest.raises(InputError, match="another configuration.*method"):
        gaflow.explain_dataset(str(corpus), out, **{**kw, "workers": 1}, method="attention")
    assert len(_read(out)) == len(INPUT)


def test_bench_workers_same_table(ray_local, model_dir, data_dir, tmp_path):
    from gaflow.evaluation.benchmark import BenchConfig, run_benchmark

    def cfg():
        return BenchConfig(model=str(model_dir), dataset="sst2",
                           methods=[DEFAULT_METHOD, "attention"], n=6, seed=3, batch_size=2,
                           max_length=48, n_boot=200)

    one = run_benchmark(cfg(), tmp_path / "one", data_path=data_dir, progress=False)
    two = run_benchmark(cfg(), tmp_path / "two", data_path=data_dir, progress=False, workers=2)
    assert one["methods"].keys() == two["methods"].keys()
    for method, e in one["methods"].items():
        for name, v in e.items():
            if name != "seconds_per_example":
                assert two["methods"][method][name] == pytest.approx(v, abs=1e-6), name

    def table(folder):  # the markdown table without its s/example column
        lines = (folder / "results.md").read_text().splitlines()
        return [line.rsplit("|", 2)[0] for line in lines if line.startswith("|")]

    assert table(tmp_path / "one") == table(tmp_path / "two")


def test_missing_ray_says_how_to_install(monkeypatch):
    import builtins

    from gaflow import GaflowError
    from gaflow.scale.runtime import require_ray

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'", name="ray")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(GaflowError, match=r"pip install 'gaflow\[ray\]'"):
        require_ray()
