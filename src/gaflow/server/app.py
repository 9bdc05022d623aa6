"""``gaflow serve``: a small local web explorer (FastAPI) on top of :func:`gaflow.explain`.

Routes: ``GET /`` the page (self-contained, no CDN), ``GET /api/info`` model, labels and methods,
``GET /api/health`` liveness and queue state (answered at once, whatever runs),
``POST /api/explain`` ``{"text", "method", "target"}`` -> prediction, heat-map fragment, flow-graph
SVG and the time taken. Bad inputs get HTTP 422 with a message that says what to change (the
target follows :func:`gaflow.explain`'s rule: a label in any case or a class index); a full
queue or a request past its time limit gets 503 with ``Retry-After``; a body above
``max_body`` bytes gets 413 (:mod:`gaflow.server.limits`). No API docs are served: neither
``/docs`` nor ``/openapi.json``.
"""

# no "from __future__ import annotations": FastAPI reads the request model from the annotation

import asyncio
import sys
import time
from contextlib import asynccontextmanager
from importlib import resources

from ..errors import GaflowError
from .limits import BodyLimit, Busy, Expired, JobQueue

MAX_CHARS = 2000
MAX_BODY = 64 * 1024  # bytes of a request body
QUEUE = 4  # explanations waiting behind the running one
TIMEOUT = 60.0  # seconds a request waits for its explanation
SWITCH_INTERVAL = 0.0005  # seconds; see serve()
MAX_COMPARE = 4  # methods shown side by side in one request


def create_app(model, tokenizer, model_name: str, max_chars: int = MAX_CHARS, top_k: int = 150,
               *, queue_size: int = QUEUE, timeout: float = TIMEOUT, max_body: int = MAX_BODY):
    """The FastAPI application serving ``model``: explanations run one at a time on a worker
    thread, at most ``queue_size`` wait behind it, each request waits at most ``timeout``
    seconds."""
    try:
        from fastapi import FastAPI, HTTPException
        from fastapi.responses import HTMLResponse
        from pydantic import BaseModel, StrictInt, StrictStr
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise GaflowError("gaflow serve needs FastAPI: pip install 'gaflow[serve]'") from exc

    from .. import validate
    from ..api import explain
    from ..flow.constructions import DEFAULT_METHOD
    from ..methods import list_methods
    from ..viz.html import render_fragment

    registered = {m.name: m for m in list_methods()}

    page = resources.files("gaflow.server").joinpath("index.html").read_text(encoding="utf-8")
    labels = [str(model.config.id2label[k]) for k in sorted(model.config.id2label)]
    jobs = JobQueue(queue_size)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.shutdown()

    app = FastAPI(title="gaflow explorer", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.state.jobs = jobs

    class ExplainRequest(BaseModel):
        text: StrictStr
        method: StrictStr = DEFAULT_METHOD
        #: more methods shown side by side with ``method`` (at most MAX_COMPARE in all)
        compare: list[StrictStr] = []
        target: StrictStr | StrictInt | None = None

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/api/info")
    async def info() -> dict:
        return {"model": model_name, "labels": labels, "methods": list(registered),
                "descriptions": {n: f"{m.kind}: {m.summary()}" for n, m in registered.items()},
                "default_method": DEFAULT_METHOD, "max_compare": MAX_COMPARE,
                "max_chars": max_chars}

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "admitted": jobs.admitted, "capacity": jobs.capacity}

    def work(text: str, names: list[str], target: int | None) -> dict:
        t0 = time.perf_counter()
        exps = [explain(model, tokenizer, text, method=name, target=target, truncation=True,
                        keep_flows=registered[name].kind == "flow") for name in names]
        exp = exps[0]
        drawn = next((e for e in exps if e.flows is not None), None)  # the first flow's graph
        return {
            "target_label": exp.target_label,
            "probability": exp.probability,
            "predicted_label": labels[exp.predicted] if exp.predicted < len(labels) else "",
            "method": exp.method,
            "methods": names,
            "n_tokens": len(exp.tokens),
            "truncated": bool(exp.config.get("truncated")),
            "seconds": time.perf_counter() - t0,
            "heatmap": render_fragment(exps),
            "flow_method": None if drawn is None else drawn.method,
            "flow_svg": "" if drawn is None else drawn.flow_figure(top_k=top_k).to_svg(),
        }

    busy = {"Retry-After": "5"}

    @app.post("/api/explain")
    async def run(req: ExplainRequest) -> dict:
        text = req.text.strip()
        if not text:
            raise HTTPException(422, "the text is empty: type a sentence to explain")
        if len(text) > max_chars:
            raise HTTPException(
                422, f"the text has {len(text)} characters; the limit is {max_chars}"
            )
        names = list(dict.fromkeys([req.method, *req.compare]))
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise HTTPException(
                422, f"unknown method {unknown[0]!r}; choose one of {', '.join(registered)}"
            )
        if len(names) > MAX_COMPARE:
            raise HTTPException(422, f"at most {MAX_COMPARE} methods side by side, got "
                                f"{len(names)}")
        try:
            target = validate.target(model.config, None if req.target == "" else req.target)
        except GaflowError as exc:
            raise HTTPException(422, str(exc)) from exc
        t0 = time.monotonic()
        try:
            fut = jobs.submit(lambda: work(text, names, target), t0 + timeout)
        except Busy:
            raise HTTPException(
                503, f"busy: {jobs.capacity} explanations are running or waiting; retry in a "
                "few seconds", headers=busy) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except (asyncio.TimeoutError, Expired):
            raise HTTPException(
                503, f"busy: no answer within the time limit of {timeout:g} s; retry later or "
                "shorten the text", headers=busy) from None
        except GaflowError as exc:
            raise HTTPException(422, str(exc)) from exc

    return app


def serve(model_name: str | None, host: str = "127.0.0.1", port: int = 8000, *,
          queue_size: int = QUEUE, timeout: float = TIMEOUT) -> None:
    """Load ``model_name`` and serve the explorer until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise GaflowError("gaflow serve needs uvicorn: pip install 'gaflow[serve]'") from exc
    from ..api import DEFAULT_MODEL, load_model

    name = model_name or DEFAULT_MODEL
    model, tokenizer = load_model(name)
    # the explanation thread holds the GIL between NumPy calls; handing it over every 0.5 ms
    # instead of Python's 5 ms keeps the event loop (health, 503s, validation) prompt
    sys.setswitchinterval(SWITCH_INTERVAL)
    app = create_app(model, tokenizer, name, queue_size=queue_size, timeout=timeout)
    print(f"gaflow explorer for {name} on http://{host}:{port}/ (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
