"""The explorer under bad and heavy use (issue 17): one target rule with the Python API, no API
docs, a body-size limit answered before the body is read, a bounded queue (503 "busy"), a time
limit, a health endpoint that answers while explanations run, and a load test of the real
server (uvicorn, 127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import gaflow

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from gaflow.server import create_app  # noqa: E402

TEXT = "the dog is not cute but very smart"


def test_target_follows_the_api_rule(tiny_bert):
    model, tok = tiny_bert
    client = TestClient(create_app(model, tok, "tiny"))
    for target in ["positive", "POSITIVE", " Positive ", "1", 1]:
        r = client.post("/api/explain", json={"text": TEXT, "target": target})
        assert r.status_code == 200 and r.json()["target_label"] == "positive", target
    assert client.post("/api/explain", json={"text": TEXT, "target": ""}).status_code == 200
    for target, msg in [("neutral", "unknown target label 'neutral'; the model's labels are "
                         "negative, positive"), ("7", "target 7 out of range for a model with 2 "
                         "classes"), (-1, "out of range")]:
        r = client.post("/api/explain", json={"text": TEXT, "target": target})
        assert r.status_code == 422 and msg in r.json()["detail"], (target, r.text)
    r = client.post("/api/explain", json={"text": TEXT, "target": True})  # not the class 1
    assert r.status_code == 422
    r = client.post("/api/explain", json={"text": "\x00\x01"})
    assert r.status_code == 422 and "no tokens besides" in r.json()["detail"]


def test_no_api_docs(tiny_bert):
    model, tok = tiny_bert
    client = TestClient(create_app(model, tok, "tiny"))
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 404, path
    assert client.get("/api/health").json()["status"] == "ok"


def test_body_limit_413_before_reading(tiny_bert):
    model, tok = tiny_bert
    app = create_app(model, tok, "tiny", max_body=64 * 1024)
    sent = []

    async def receive():  # a 10 MB body announced: not one byte of it may be read
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/explain",
             "raw_path": b"/api/explain", "query_string": b"", "root_path": "",
             "headers": [(b"content-length", b"10000000"),
                         (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["detail"] == (
        "the request body has 10000000 bytes; the limit is 65536 bytes")

    client = TestClient(app)
    r = client.post("/api/explain", content=b"x" * 10_000_000,
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit is 65536 bytes" in r.json()["detail"]
    pulled, sent = [], []

    async def chunked():  # no Content-Length: reading stops once the limit is passed
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": len(pulled) < 10_000}

    no_length = {**scope, "headers": [(b"content-type", b"application/json")]}
    asyncio.run(app(no_length, chunked, send))
    assert sent[0]["status"] == 413 and len(pulled) == 65  # 65 KiB > 64 KiB
    assert "more than 65536 bytes" in json.loads(sent[1]["body"])["detail"]
    r = client.post("/api/explain", json={"text": TEXT + " " * 60_000})  # under the limit
    assert r.status_code == 200


def _wait_until(cond, seconds=10.0):
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_full_queue_is_503_and_health_answers(tiny_bert, monkeypatch):
    model, tok = tiny_bert
    real = gaflow.api.explain
    gate, calls = threading.Event(), []

    def held(*args, **kwargs):
        calls.append(args[2])
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(gaflow.api, "explain", held)
    app = create_app(model, tok, "tiny", queue_size=2, timeout=30)
    jobs = app.state.jobs
    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        futs = [pool.submit(client.post, "/api/explain", json={"text": f"{TEXT} {k}"})
                for k in range(3)]
        _wait_until(lambda: jobs.admitted == 3 and len(calls) == 1)
        r = client.post("/api/explain", json={"text": TEXT})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["detail"].startswith("busy: 3 explanations are running or waiting")
        t0 = time.perf_counter()
        health = client.get("/api/health")
        assert time.perf_counter() - t0 < 0.1
        assert health.json() == {"status": "ok", "admitted": 3, "capacity": 3}
        gate.set()
        answers = [f.result(timeout=30) for f in futs]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(calls) == 3 and jobs.admitted == 0


def test_time_limit_is_503_and_drops_waiting_work(tiny_bert, monkeypatch):
    model, tok = tiny_bert
    real = gaflow.api.explain
    calls = []

    def slow(*args, **kwargs):
        calls.append(args[2])
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(gaflow.api, "explain", slow)
    app = create_app(model, tok, "tiny", queue_size=2, timeout=0.3)
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/api/explain", json={"text": "the dog"})
        _wait_until(lambda: len(calls) == 1)
        second = pool.submit(client.post, "/api/explain", json={"text": "the movie"})
        for fut in (first, second):
            r = fut.result(timeout=30)
            assert r.status_code == 503, r.text
            assert "no answer within the time limit of 0.3 s" in r.json()["detail"]
        _wait_until(lambda: app.state.jobs.admitted == 0)  # the running one finished
    assert calls == ["the dog"]  # the waiting one was dropped unrun


# ------------------------------------------------------------------------- the load test

N_REQUESTS = 30


@pytest.fixture(scope="module")
def long_model_dir(tokenizer, tmp_path_factory):
    """A 2-layer random BERT that takes 256 tokens: a 2,000-character text is a long job."""
    import torch
    import transformers as tf

    torch.manual_seed(1)
    cfg = tf.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=256,
                        num_labels=2, pad_token_id=tokenizer.pad_token_id,
                        attn_implementation="eager")
    model = tf.BertForSequenceClassification(cfg).eval()
    model.config.id2label = {0: "negative", 1: "positive"}
    model.config.label2id = {"negative": 0, "positive": 1}
    folder = tmp_path_factory.mktemp("serve") / "m"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def live_server(long_model_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(gaflow.__file__).parents[1]),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gaflow.cli", "serve", "--model", str(long_model_dir),
         "--host", "127.0.0.1", "--port", str(port), "--queue", "3", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gaflow serve exited: {proc.stdout.read()}")
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > end:
                pytest.fail("gaflow serve did not answer within 90 s")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def _requests():
    """30 mixed requests: long and short texts, bad inputs, an oversized body."""
    from conftest import WORDS

    long_text = " ".join(WORDS * 20)[:2000]
    out = []
    for k in range(N_REQUESTS):
        kind = k % 6
        if kind in (0, 3):
            out.append(("long", {"json": {"text": long_text, "method": "agf"}}))
        elif kind in (1, 4):
            out.append(("short", {"json": {"text": f"the movie was {'good' if k % 2 else 'dull'}",
                                           "method": ["agf", "af", "gf"][k % 3],
                                           "target": "Positive"}}))
        elif kind == 2:
            out.append(("bad", {"json": {"text": "the dog", "target": "neutral"}}))
        else:
            out.append(("huge", {"content": b"{" + b" " * 100_000 + b"}",
                                 "headers": {"content-type": "application/json"}}))
    return out


POLLER = """
import sys, threading, time, json, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
out = []
with httpx.Client(base_url=sys.argv[1], timeout=5) as c:
    c.get("/api/health")
    print("ready", flush=True)
    while not stop.is_set():
        t0 = time.perf_counter()
        assert c.get("/api/health").json()["status"] == "ok"
        out.append(time.perf_counter() - t0)
        time.sleep(0.05)
print(json.dumps(out))
"""


def test_load_30_concurrent_requests(live_server, long_model_dir):
    url, proc = live_server
    model, tok = gaflow.load_model(str(long_model_dir))
    # the health poller runs in its own process, as another user's browser would
    poller = subprocess.Popen([sys.executable, "-c", POLLER, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert poller.stdout.readline().strip() == "ready"

    limits = httpx.Limits(max_connections=N_REQUESTS, max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=120, limits=limits) as client:

        def send(item):
            kind, kwargs = item
            return kind, kwargs, client.post("/api/explain", **kwargs)

        # rounds of the 30 requests until the load has lasted 1.5 s (the face solver made one
        # round as short as 0.3 s on the CI machine: too short to watch the health endpoint)
        t0, results = time.monotonic(), []
        for _ in range(10):
            with ThreadPoolExecutor(N_REQUESTS) as pool:
                results += list(pool.map(send, _requests()))
            if time.monotonic() - t0 >= 1.5:
                break
        wall = time.monotonic() - t0
    latencies = json.loads(poller.communicate("stop\n", timeout=30)[0])

    codes, refs = {}, {}
    for kind, kwargs, r in results:
        codes.setdefault(kind, []).append(r.status_code)
        if kind == "bad":
            assert r.status_code == 422 and "unknown target label" in r.json()["detail"]
        elif kind == "huge":
            assert r.status_code == 413
        elif r.status_code == 503:
            assert r.json()["detail"].startswith("busy")
        else:
            assert r.status_code == 200, r.text
            data, body = r.json(), kwargs["json"]
            key = (body["text"], body["method"], body.get("target"))
            if key not in refs:  # the rounds repeat the same requests
                refs[key] = gaflow.explain(model, tok, body["text"], method=body["method"],
                                           target=body.get("target"), truncation=True)
            ref = refs[key]
            assert data["target_label"] == ref.target_label
            assert data["probability"] == pytest.approx(ref.probability, rel=1e-5)
            assert data["n_tokens"] == len(ref.tokens)
            assert data["truncated"] == (kind == "long")
    answered = [c for k in ("long", "short") for c in codes[k]]
    assert answered.count(200) >= 1 and set(answered) <= {200, 503}
    assert proc.poll() is None, "the server went down"
    assert httpx.get(f"{url}/api/health", timeout=5).json()["admitted"] == 0
    # the health endpoint never waits for an explanation (the load lasts >= 1.5 s): 95% of
    # answers within 100 ms, all within 1 s. The tail allows for the OS scheduler of a shared
    # 2-core CI machine (spikes of 0.2-0.4 s were seen with a load average of 8, whatever ran)
    assert len(latencies) >= 10, (len(latencies), wall)
    assert np.quantile(latencies, 0.95) < 0.1, sorted(latencies)[-5:]
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
