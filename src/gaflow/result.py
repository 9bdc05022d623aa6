"""``Explanation``: the typed result of :func:`gaflow.explain` (exact JSON round trip)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT_VERSION = 1


@dataclass
class Explanation:
    """Attribution of one classifier prediction to its input tokens.

    Attributes:
        text: the input text.
        tokens: the model's tokens (special tokens included).
        scores: (t,) attribution per token (flow out of the super-source, GAF Eq. 6).
        special: (t,) bool, special tokens ([CLS], [SEP], ...); left out of :meth:`words`.
        word_ids: per token, the index of the word it belongs to (``None`` for special tokens).
        offsets: per token, its (start, end) character span in ``text``.
        target: the explained class index; ``target_label`` its name.
        probability: softmax probability of ``target``.
        predicted: the class the model predicts.
        method: the attribution method (``agf``, ``af``, ``gf``, ...).
        flow_value: the maximum-flow value ``F`` (= ``scores.sum()``) for flow methods; for the
            baselines, the sum of their scores.
        config: everything needed to reproduce the result (options, model, package versions).
        flows: optional (L, t, t) edge flows, ``flows[l, i, j]`` on ``(l, j) -> (l+1, i)``
            (``explain(..., keep_flows=True)``); needed by :meth:`flow_figure`.
    """

    text: str
    tokens: list[str]
    scores: np.ndarray
    special: np.ndarray
    word_ids: list[int | None]
    offsets: list[tuple[int, int]]
    target: int
    target_label: str
    probability: float
    predicted: int
    method: str
    flow_value: float
    config: dict[str, Any] = field(default_factory=dict)
    flows: np.ndarray | None = None

    def words(self) -> list[tuple[str, float]]:
        """Per-word scores (sum over a word's sub-word tokens); special tokens left out."""
        spans: dict[int, list[int]] = {}
        for pos, wid in enumerate(self.word_ids):
            if wid is not None and not self.special[pos]:
                spans.setdefault(wid, []).append(pos)
        out = []
        for wid in sorted(spans):
            pos = spans[wid]
            start, end = self.offsets[pos[0]][0], self.offsets[pos[-1]][1]
            word = self.text[start:end] if end > start else "".join(self.tokens[p] for p in pos)
            out.append((word, float(sum(self.scores[p] for p in pos))))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "text": self.text,
            "tokens": list(self.tokens),
            "scores": [float(s) for s in self.scores],
            "special": [bool(s) for s in self.special],
            "word_ids": list(self.word_ids),
            "offsets": [[int(a), int(b)] for a, b in self.offsets],
            "target": int(self.target),
            "target_label": self.target_label,
            "probability": float(self.probability),
            "predicted": int(self.predicted),
            "method": self.method,
            "flow_value": float(self.flow_value),
            "config": self.config,
            **({} if self.flows is None else {"flows": np.asarray(self.flows).tolist()}),
        }

    def to_json(self, indent: int | None = None) -> str:
        """JSON text; floats are written with ``repr`` so :meth:`from_json` is exact."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported Explanation format_version {version!r}")
        return cls(
            text=data["text"],
            tokens=list(data["tokens"]),
            scores=np.asarray(data["scores"], dtype=np.float64),
            special=np.asarray(data["special"], dtype=bool),
            word_ids=list(data["word_ids"]),
            offsets=[(int(a), int(b)) for a, b in data["offsets"]],
            target=int(data["target"]),
            target_label=data["target_label"],
            probability=float(data["probability"]),
            predicted=int(data["predicted"]),
            method=data["method"],
            flow_value=float(data["flow_value"]),
            config=data["config"],
            flows=None if data.get("flows") is None else np.asarray(data["flows"], dtype=float),
        )

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        return cls.from_dict(json.loads(text))

    def to_html(self, others: list[Explanation] | None = None, title: str | None = None) -> str:
        """A self-contained HTML heat-map document; ``others`` (e.g. other methods for the same
        text) are shown as extra rows below this one."""
        from .viz.html import render_html

        return render_html([self, *(others or [])], title=title)

    def _repr_html_(self) -> str:  # notebooks
        from .viz.html import render_fragment

        return render_fragment(self)

    def flow_figure(self, top_k: int = 150, threshold: float | None = None):
        """The largest edge flows as a :class:`~gaflow.viz.flowplot.FlowFigure` (``.to_svg()``,
        ``.save("x.png")``); needs ``flows`` (``explain(..., keep_flows=True)``)."""
        from .viz.flowplot import flow_figure

        return flow_figure(self, top_k=top_k, threshold=threshold)

    def to_dataframe(self):
        """One row per token: ``token``, ``score``, ``special``, ``word_id``, ``start``, ``end``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "token": self.tokens,
                "score": self.scores,
                "special": self.special,
                "word_id": pd.array(self.word_ids, dtype="Int64"),
                "start": [a for a, _ in self.offsets],
                "end": [b for _, b in self.offsets],
            }
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Explanation):
            return NotImplemented
        return self.to_dict() == other.to_dict()
