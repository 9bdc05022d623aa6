"""Flow-graph pictures: layers as columns, tokens as rows, the largest edge flows as lines whose
width grows with the flow; input tokens labelled with their attribution.

Needs the solved edge flows: ``gaflow.explain(..., keep_flows=True)``. Only the ``top_k`` largest
edges (or those above ``threshold`` × the largest) are drawn, so a 512-token input stays readable.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # the result imports its views lazily; the views never import it
    from ..result import Explanation

MIN_WIDTH, MAX_WIDTH = 0.5, 6.0  # pixels


@dataclass(frozen=True)
class Edge:
    """Flow ``value`` on the edge (layer ``layer``, token ``src``) -> (``layer + 1``, ``dst``)."""

    layer: int
    src: int
    dst: int
    value: float


@dataclass
class FlowFigure:
    """The kept edges of one explanation's flow and how to draw them.

    Attributes:
        tokens, scores: the input tokens and their attributions (row labels).
        n_layers: L (the figure has L+1 columns of nodes).
        edges: the drawn edges, largest flow first.
        total_edges: how many edges carry flow in all (to say what was left out).
    """

    tokens: list[str]
    scores: np.ndarray
    n_layers: int
    edges: list[Edge]
    total_edges: int
    title: str = ""

    # geometry shared by the SVG and PNG writers
    col_w: float = 110.0
    row_h: float = 18.0
    left: float = 190.0
    top: float = 62.0

    def width_of(self, value: float) -> float:
        """Line width, linear and increasing in the flow, from MIN_WIDTH to MAX_WIDTH."""
        top = self.edges[0].value if self.edges else 1.0
        return MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * (value / top if top > 0 else 0.0)

    def xy(self, layer: int, token: int) -> tuple[float, float]:
        return self.left + layer * self.col_w, self.top + token * self.row_h

    @property
    def size(self) -> tuple[float, float]:
        return (self.left + self.n_layers * self.col_w + 40,
                self.top + max(1, len(self.tokens)) * self.row_h + 20)

    def to_svg(self) -> str:
        """Standalone SVG text: one ``<line class="edge">`` per kept edge."""
        w, h = self.size
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
            f'viewBox="0 0 {w:.0f} {h:.0f}" font-family="sans-serif" font-size="11">',
            f'<text x="8" y="16" font-size="13">{html.escape(self.title)}</text>',
            f'<text x="8" y="30" fill="#666">{len(self.edges)} of {self.total_edges} '
            "edges with flow shown; width ∝ flow</text>",
        ]
        for layer in range(self.n_layers + 1):
            x, _ = self.xy(layer, 0)
            out.append(f'<text x="{x:.1f}" y="{self.top - 12:.1f}" text-anchor="middle" '
                       f'fill="#666">layer {layer}</text>')
        out.append('<g class="edges" stroke="rgb(33,102,172)" stroke-opacity="0.55" '
                   'stroke-linecap="round">')
        for e in reversed(self.edges):  # thick edges drawn last, on top
            x1, y1 = self.xy(e.layer, e.src)
            x2, y2 = self.xy(e.layer + 1, e.dst)
            out.append(
                f'<line class="edge" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                f'stroke-width="{self.width_of(e.value):.3f}" data-flow="{e.value:.6g}" '
                f'data-layer="{e.layer}" data-from="{e.src}" data-to="{e.dst}">'
                f"<title>layer {e.layer} token {e.src} → layer {e.layer + 1} token {e.dst}: "
                f"{e.value:.4g}</title></line>"
            )
        out.append("</g>")
        for k, (tok, s) in enumerate(zip(self.tokens, self.scores, strict=True)):
            x, y = self.xy(0, k)
            out.append(
                f'<text class="token" x="{x - 10:.1f}" y="{y + 4:.1f}" text-anchor="end">'
                f"{html.escape(tok)} <tspan fill=\"#1b7837\">{s:.3g}</tspan></text>"
            )
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def _repr_svg_(self) -> str:  # notebooks
        return self.to_svg()

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``.svg`` (the text of :meth:`to_svg`) or ``.png`` (matplotlib) to ``path``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise InputError(f"{path} exists; pass overwrite=True to replace it")
        suffix = path.suffix.lower()
        if suffix == ".svg":
            path.write_text(self.to_svg(), encoding="utf-8")
        elif suffix == ".png":
            self._save_png(path)
        else:
            raise InputError(f"write flow figures as .svg or .png, not {suffix or path.name!r}")
        return path

    def _save_png(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection

        w, h = self.size
        fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.axis("off")
        segs = [[self.xy(e.layer, e.src), self.xy(e.layer + 1, e.dst)] for e in self.edges]
        widths = [0.72 * self.width_of(e.value) for e in self.edges]  # px -> pt
        ax.add_collection(LineCollection(segs, linewidths=widths, colors=(0.13, 0.4, 0.67, 0.55),
                                         capstyle="round"))
        for k, (tok, s) in enumerate(zip(self.tokens, self.scores, strict=True)):
            x, y = self.xy(0, k)
            ax.text(x - 10, y, f"{tok} {s:.3g}", ha="right", va="center", fontsize=8)
        for layer in range(self.n_layers + 1):
            x, _ = self.xy(layer, 0)
            ax.text(x, self.top - 12, f"layer {layer}", ha="center", fontsize=8, color="#666")
        ax.text(8, 16, self.title, fontsize=10)
        fig.savefig(path, dpi=100)
        plt.close(fig)


def flow_figure(exp: Explanation, top_k: int = 150, threshold: float | None = None) -> FlowFigure:
    """Select the edges to draw for ``exp`` (which must carry ``flows``).

    Args:
        top_k: draw at most this many edges, the largest flows.
        threshold: also drop edges below ``threshold`` × the largest edge flow (0..1).
    """
    if exp.flows is None:
        raise InputError(
            "this Explanation has no edge flows; compute it with "
            "gaflow.explain(..., keep_flows=True) (CLI: --format svg)"
        )
    if not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a positive integer, got {top_k!r}")
    if threshold is not None and not 0 <= threshold <= 1:
        raise InputError(f"threshold must lie in [0, 1], got {threshold!r}")
    flows = np.asarray(exp.flows, dtype=float)
    layer, dst, src = np.nonzero(flows > 0)
    values = flows[layer, dst, src]
    order = np.argsort(-values, kind="stable")
    if threshold is not None and len(values):
        order = order[values[order] >= threshold * values[order[0]]]
    order = order[:top_k]
    edges = [Edge(int(layer[k]), int(src[k]), int(dst[k]), float(values[k])) for k in order]
    return FlowFigure(
        tokens=list(exp.tokens),
        scores=np.asarray(exp.scores, dtype=float),
        n_layers=flows.shape[0],
        edges=edges,
        total_edges=int(len(values)),
        title=f"{exp.method} flow · target {exp.target_label} · F = {exp.flow_value:.4g}",
    )
