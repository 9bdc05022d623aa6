"""Heat-map HTML, flow-graph SVG/PNG, the explorer's API and the CLI's html/svg formats."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

import gaflow
from gaflow import cli
from gaflow.errors import InputError
from gaflow.viz.html import colour, render_fragment

HOSTILE = 'the dog <script>alert("x")</script> & <img src=x onerror=alert(1)> is smart'


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.spans = [], [], []
        self._in_tok = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        d = dict(attrs)
        if tag == "span" and "tok" in (d.get("class") or "").split():
            self._in_tok = d
            self.spans.append([d, ""])

    def handle_endtag(self, tag):
        if tag == "span":
            self._in_tok = None

    def handle_data(self, data):
        if self._in_tok is not None:
            self.spans[-1][1] += data


@pytest.fixture(scope="module")
def exps(tiny_bert):
    model, tok = tiny_bert
    return [gaflow.explain(model, tok, HOSTILE, method=m, keep_flows=True)
            for m in ("agf", "af", "gf")]


def _no_external_resources(doc: str) -> None:
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", doc, re.I)
    assert "@import" not in doc and "url(" not in doc
    assert "<link" not in doc.lower()


def test_html_parses_escapes_and_is_self_contained(exps):
    doc = exps[0].to_html(exps[1:])
    _no_external_resources(doc)
    p = _Collector()
    p.feed(doc)
    assert "script" not in p.tags and "img" not in p.tags  # hostile text stays text
    assert "&lt;script&gt;" in doc
    assert "onerror" not in [k for k, _ in p.attrs]
    # one row per method, one coloured span per token and per word
    assert doc.count('class="row"') == 3
    words = exps[0].words()
    assert len(p.spans) == 3 * (len(exps[0].tokens) + len(words))
    texts = [t for _, t in p.spans[: len(exps[0].tokens)]]
    assert texts == exps[0].tokens
    scores = [float(d["data-score"]) for d, _ in p.spans[: len(exps[0].tokens)]]
    np.testing.assert_allclose(scores, exps[0].scores, rtol=1e-5)
    assert "positive" in doc and f"{exps[0].probability:.3f}" in doc
    assert 'type="radio"' in doc  # word / sub-word toggle


def test_repr_html_is_fragment(exps):
    frag = exps[0]._repr_html_()
    assert frag.startswith('<div class="gaf"') and "<html" not in frag
    with pytest.raises(ValueError, match="at least one"):
        render_fragment([])


def test_colour_scale_diverges_at_zero():
    assert colour(0.0, 1.0) == "rgb(255,255,255)"
    assert colour(1.0, 1.0) == "rgb(27,120,55)" and colour(-1.0, 1.0) == "rgb(178,24,43)"
    assert colour(5.0, 1.0) == colour(1.0, 1.0)  # saturates
    half = [int(v) for v in re.findall(r"\d+", colour(0.5, 1.0))]
    assert half == [141, 188, 155]


def test_flow_svg_one_edge_per_kept_flow_and_monotone_widths(exps):
    exp = exps[1]
    fig = exp.flow_figure(top_k=25)
    root = ET.fromstring(fig.to_svg())
    ns = {"s": "http://www.w3.org/2000/svg"}
    lines = root.findall(".//s:line", ns)
    assert len(lines) == len(fig.edges) == 25
    flows = np.array([float(x.get("data-flow")) for x in lines])
    widths = np.array([float(x.get("stroke-width")) for x in lines])
    order = np.argsort(flows)
    assert np.all(np.diff(widths[order]) >= -1e-9)
    # the kept edges are the 25 largest flows of the solution
    assert np.isclose(flows.max(), exp.flows.max(), rtol=1e-5)
    assert flows.min() >= np.sort(exp.flows.ravel())[-25] * (1 - 1e-5)
    labels = root.findall(".//s:text[@class='token']", ns)
    assert len(labels) == len(exp.tokens)
    assert "<script>" not in fig.to_svg()
    thr = exp.flow_figure(top_k=10_000, threshold=0.5)
    assert all(e.value >= 0.5 * thr.edges[0].value for e in thr.edges)


def test_flow_figure_needs_flows_and_saves(tiny_bert, exps, tmp_path):
    model, tok = tiny_bert
    plain = gaflow.explain(model, tok, "the dog is smart")
    with pytest.raises(InputError, match="keep_flows=True"):
        plain.flow_figure()
    fig = exps[0].flow_figure()
    png = fig.save(tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig.save(tmp_path / "f.svg")
    with pytest.raises(InputError, match="exists"):
        fig.save(tmp_path / "f.svg")
    with pytest.raises(InputError, match=".svg or .png"):
        fig.save(tmp_path / "f.pdf")


def test_flows_round_trip_json(exps):
    again = gaflow.Explanation.from_json(exps[0].to_json())
    assert again == exps[0]
    np.testing.assert_array_equal(again.flows, exps[0].flows)
    # efficiency of the kept flows: the flow into layer 1 equals the attributions
    np.testing.assert_allclose(exps[0].flows[0].sum(axis=0), exps[0].scores, rtol=1e-6,
                               atol=1e-12 * exps[0].flow_value)


def test_cli_html_and_svg(tmp_path, monkeypatch, tiny_bert):
    model, tok = tiny_bert
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    out = tmp_path / "out.html"
    assert cli.main(["explain", HOSTILE, "--model", str(folder), "--method", "agf,af",
                     "--format", "html", "-o", str(out)]) == 0
    doc = out.read_text()
    assert doc.count('class="row"') == 2 and "&lt;script&gt;" in doc
    svg = tmp_path / "out.svg"
    assert cli.main(["explain", "the dog is smart", "--model", str(folder), "--format", "svg",
                     "--top-k", "12", "-o", str(svg)]) == 0
    assert svg.read_text().count('<line class="edge"') == 12


def test_server_api_validates(tiny_bert):
    from fastapi.testclient import TestClient

    from gaflow.server import create_app

    model, tok = tiny_bert
    client = TestClient(create_app(model, tok, "tiny", max_chars=200))
    info = client.get("/api/info").json()
    assert info["labels"] == ["negative", "positive"] and "agf" in info["methods"]
    page = client.get("/").text
    _no_external_resources(page)
    r = client.post("/api/explain", json={"text": HOSTILE, "method": "af", "target": "negative"})
    assert r.status_code == 200
    data = r.json()
    assert data["target_label"] == "negative" and data["seconds"] > 0
    assert "&lt;" in data["heatmap"] and "<script" not in data["heatmap"]
    assert data["flow_svg"].count('<line class="edge"') > 0
    for body, msg in [
        ({"text": "   "}, "empty"),
        ({"text": "x" * 201}, "limit is 200"),
        ({"text": "the dog", "method": "nope"}, "unknown method"),
        ({"text": "the dog", "compare": ["agf", "nope"]}, "unknown method 'nope'"),
        ({"text": "the dog", "compare": ["agf", "af", "gf", "rollout"]}, "at most 4"),
        ({"text": "the dog", "target": "neutral"}, "unknown target"),
    ]:
        r = client.post("/api/explain", json=body)
        assert r.status_code == 422 and msg in r.json()["detail"], body


def test_server_offers_every_method_side_by_side(tiny_bert):
    """The explorer offers every registered method, baselines included, and shows several on
    the same text as rows of one heat-map; the flow graph is the first flow's."""
    from fastapi.testclient import TestClient

    from gaflow.methods import method_names
    from gaflow.server import create_app

    model, tok = tiny_bert
    client = TestClient(create_app(model, tok, "tiny"))
    info = client.get("/api/info").json()
    assert info["methods"] == method_names() and "gae" in info["methods"]
    assert info["descriptions"]["gae"].startswith("baseline")
    r = client.post("/api/explain", json={"text": "the dog is cute", "method": "rollout",
                                          "compare": ["agf", "gae"]})
    assert r.status_code == 200, r.text
    data = r.json()
    rows = [m for m in ("rollout", "agf", "gae") if f'data-method="{m}"' in data["heatmap"]]
    assert data["methods"] == ["rollout", "agf", "gae"] and rows == data["methods"]
    assert data["flow_method"] == "agf" and '<line class="edge"' in data["flow_svg"]
    ref = gaflow.explain(model, tok, "the dog is cute", method="gae", truncation=True)
    row = data["heatmap"].split('data-method="gae"')[1].split('class="words"')[0]
    shown = [float(x) for x in re.findall(r'data-score="([^"]+)"', row)]
    np.testing.assert_allclose(shown, ref.scores, rtol=1e-5)
    r = client.post("/api/explain", json={"text": "the dog is cute", "method": "attention"})
    assert r.status_code == 200 and r.json()["flow_svg"] == "" and r.json()["flow_method"] is None


def test_curve_plot(tmp_path):
    from gaflow.viz.plots import Curve, curve_plot

    curves = {"agf": Curve([10, 20, 30], [0.1, 0.2, 0.25], [0.05, 0.15, 0.2], [0.15, 0.25, 0.3]),
              "rollout": Curve([10, 20, 30], [0.05, 0.1, 0.12])}
    out = curve_plot(curves, tmp_path / "aopc.png", title="AOPC", xlabel="% removed",
                     ylabel="drop", highlight="agf")
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="exists"):
        curve_plot(curves, out, title="t", xlabel="x", ylabel="y")
    with pytest.raises(InputError, match="same length"):
        curve_plot({"a": Curve([1, 2], [1])}, tmp_path / "b.png", title="t", xlabel="x",
                   ylabel="y")
    svg = curve_plot(curves, tmp_path / "aopc.svg", title="AOPC curve", xlabel="% removed",
                     ylabel="drop")
    text = svg.read_text()
    assert "AOPC curve" in text and "rollout" in text and "% removed" in text
