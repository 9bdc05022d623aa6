"""Self-contained HTML token heat-maps of :class:`~gaflow.result.Explanation` objects.

No script, font or style is fetched from anywhere: one HTML string with inline CSS. Every piece of
user text (tokens, words, labels, titles) goes through :func:`html.escape`. The word / sub-word
toggle is two radio buttons and CSS, so it also works where notebooks strip scripts.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the result imports its views lazily; the views never import it
    from ..result import Explanation

POSITIVE = (27, 120, 55)  # green: the token supports the explained class
NEGATIVE = (178, 24, 43)  # red: the token speaks against it

_CSS = """
.gaf{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:15px;color:#222}
.gaf .row{margin:0 0 14px 0;padding:8px 10px;border:1px solid #ddd;border-radius:6px}
.gaf .head{font-size:13px;color:#555;margin-bottom:6px}
.gaf .head b{color:#111}
.gaf .tok{display:inline-block;padding:1px 3px;margin:1px 1px;border-radius:3px;
  line-height:1.6;white-space:pre}
.gaf .tok.special{color:#999;font-size:12px}
.gaf .legend{display:flex;align-items:center;gap:6px;font-size:12px;color:#555;margin:4px 0 10px}
.gaf .bar{width:160px;height:10px;border:1px solid #ccc;
  background:linear-gradient(to right,rgb(178,24,43),#fff,rgb(27,120,55))}
.gaf input.view{margin-left:12px}
.gaf .words{display:none}
.gaf input.v-word:checked ~ .rows .words{display:block}
.gaf input.v-word:checked ~ .rows .subwords{display:none}
"""


def colour(score: float, scale: float) -> str:
    """CSS background for ``score`` on a diverging scale centred at 0 (white), saturating at
    ``|score| = scale``."""
    if not np.isfinite(score) or scale <= 0:
        return "rgb(255,255,255)"
    a = min(1.0, abs(score) / scale)
    base = POSITIVE if score >= 0 else NEGATIVE
    r, g, b = (round(255 + (c - 255) * a) for c in base)
    return f"rgb({r},{g},{b})"


def _text_colour(score: float, scale: float) -> str:
    return "#fff" if scale > 0 and abs(score) / scale > 0.6 else "#111"


def _span(text: str, score: float, scale: float, total: float, special: bool = False) -> str:
    share = f" ({score / total:.1%} of the flow)" if total else ""
    cls = "tok special" if special else "tok"
    return (
        f'<span class="{cls}" data-score="{score:.6g}" title="{html.escape(f"{score:.4g}{share}")}"'
        f' style="background:{colour(score, scale)};color:{_text_colour(score, scale)}">'
        f"{html.escape(text)}</span>"
    )


def _row(exp: Explanation, idx: int) -> str:
    real = ~np.asarray(exp.special, dtype=bool)
    scores = np.asarray(exp.scores, dtype=float)
    scale = float(np.max(np.abs(scores[real]))) if real.any() else 0.0
    words = exp.words()
    wscale = max((abs(s) for _, s in words), default=0.0)
    # shares of the flow make sense for non-negative scores (flow methods), not signed ones
    total = float(exp.flow_value) if exp.flow_value > 0 and (scores >= 0).all() else 0.0
    sub = " ".join(
        _span(tok, float(s), scale, total, special=bool(sp))
        for tok, s, sp in zip(exp.tokens, scores, exp.special, strict=True)
    )
    wrd = " ".join(_span(w, s, wscale, total) for w, s in words)
    pred = "" if exp.predicted == exp.target else f" · model predicts class {exp.predicted}"
    head = (
        f'<div class="head"><b>{html.escape(exp.method)}</b> · target '
        f'<b class="label">{html.escape(str(exp.target_label))}</b> '
        f'(p = <span class="prob">{exp.probability:.3f}</span>){html.escape(pred)}'
        f" · flow {exp.flow_value:.4g}</div>"
    )
    return (
        f'<div class="row" data-method="{html.escape(exp.method)}" data-index="{idx}">{head}'
        f'<div class="subwords">{sub}</div><div class="words">{wrd}</div></div>'
    )


_ids = itertools.count()


def _as_list(explanations) -> list:
    """One explanation (anything with ``scores``) or a sequence of them, as a list."""
    return [explanations] if hasattr(explanations, "scores") else list(explanations)


def render_fragment(explanations: Explanation | Sequence[Explanation]) -> str:
    """A ``<div class="gaf">`` with its own ``<style>``: one row per explanation (e.g. several
    methods for the same text, side by side), a legend and the word / sub-word toggle."""
    exps = _as_list(explanations)
    if not exps:
        raise ValueError("nothing to render: pass at least one Explanation")
    uid = f"gaf{next(_ids)}"
    rows = "".join(_row(e, k) for k, e in enumerate(exps))
    return (
        f'<div class="gaf" id="{uid}"><style>{_CSS}</style>'
        f'<div class="legend"><span>against</span><span class="bar"></span><span>for the '
        f"target class</span> · hover a token for its score</div>"
        f'<input type="radio" class="view v-sub" name="{uid}-view" id="{uid}-sub" checked>'
        f'<label for="{uid}-sub">sub-word tokens</label>'
        f'<input type="radio" class="view v-word" name="{uid}-view" id="{uid}-word">'
        f'<label for="{uid}-word">words</label>'
        f'<div class="rows">{rows}</div></div>'
    )


def render_html(explanations: Explanation | Sequence[Explanation], title: str | None = None) -> str:
    """A complete, self-contained HTML document (see :func:`render_fragment`)."""
    exps = _as_list(explanations)
    heading = title if title is not None else "gaflow attributions"
    text = exps[0].text if exps else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title></head><body>"
        f"<h3 style=\"font-family:system-ui,sans-serif\">{html.escape(heading)}</h3>"
        f'<p style="font-family:system-ui,sans-serif;color:#444" class="text">'
        f"{html.escape(text)}</p>{render_fragment(exps)}</body></html>\n"
    )
