"""``gaflow serve``: a small local web explorer (FastAPI) on top of :func:`gaflow.explain`.

Routes: ``GET /`` the page (self-contained, no CDN), ``GET /api/info`` model, labels and methods,
``POST /api/explain`` ``{"text", "method", "target"}`` -> prediction, heat-map fragment, flow-graph
SVG and the time taken. Bad inputs get HTTP 422 with a message that says what to change.
"""

# no "from __future__ import annotations": FastAPI reads the request model from the annotation

import threading
import time
from importlib import resources

from ..errors import GaflowError

MAX_CHARS = 2000


def create_app(model, tokenizer, model_name: str, max_chars: int = MAX_CHARS, top_k: int = 150):
    """The FastAPI application serving ``model``."""
    try:
        from fastapi import FastAPI, HTTPException
        from fastapi.responses import HTMLResponse
        from pydantic import BaseModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise GaflowError("gaflow serve needs FastAPI: pip install 'gaflow[serve]'") from exc

    from ..api import explain
    from ..flow.constructions import CONSTRUCTIONS, DEFAULT_METHOD
    from ..flow.tensors import INFORMATION_TENSORS
    from ..viz.html import render_fragment

    flows = list(dict.fromkeys([DEFAULT_METHOD, *INFORMATION_TENSORS, *CONSTRUCTIONS]))

    page = resources.files("gaflow.server").joinpath("index.html").read_text(encoding="utf-8")
    labels = [str(model.config.id2label[k]) for k in sorted(model.config.id2label)]
    lock = threading.Lock()  # one explanation at a time: the model is not re-entrant
    app = FastAPI(title="gaflow explorer", docs_url=None, redoc_url=None)

    class ExplainRequest(BaseModel):
        text: str
        method: str = DEFAULT_METHOD
        target: str | None = None

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict:
        return {"model": model_name, "labels": labels, "methods": flows,
                "default_method": DEFAULT_METHOD,
                "max_chars": max_chars}

    @app.post("/api/explain")
    def run(req: ExplainRequest) -> dict:
        text = req.text.strip()
        if not text:
            raise HTTPException(422, "the text is empty: type a sentence to explain")
        if len(text) > max_chars:
            raise HTTPException(
                422, f"the text has {len(text)} characters; the limit is {max_chars}"
            )
        if req.method not in flows:
            raise HTTPException(
                422, f"unknown method {req.method!r}; choose one of {', '.join(flows)}"
            )
        target = req.target or None
        if target is not None and target not in labels:
            raise HTTPException(
                422, f"unknown target {target!r}; the labels are {', '.join(labels)}"
            )
        t0 = time.perf_counter()
        try:
            with lock:
                exp = explain(model, tokenizer, text, method=req.method, target=target,
                              truncation=True, keep_flows=True)
        except GaflowError as exc:
            raise HTTPException(422, str(exc)) from exc
        seconds = time.perf_counter() - t0
        return {
            "target_label": exp.target_label,
            "probability": exp.probability,
            "predicted_label": labels[exp.predicted] if exp.predicted < len(labels) else "",
            "method": exp.method,
            "n_tokens": len(exp.tokens),
            "truncated": bool(exp.config.get("truncated")),
            "seconds": seconds,
            "heatmap": render_fragment(exp),
            "flow_svg": exp.flow_figure(top_k=top_k).to_svg(),
        }

    return app


def serve(model_name: str | None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load ``model_name`` and serve the explorer until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise GaflowError("gaflow serve needs uvicorn: pip install 'gaflow[serve]'") from exc
    from ..api import DEFAULT_MODEL, load_model

    name = model_name or DEFAULT_MODEL
    model, tokenizer = load_model(name)
    app = create_app(model, tokenizer, name)
    print(f"gaflow explorer for {name} on http://{host}:{port}/ (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
