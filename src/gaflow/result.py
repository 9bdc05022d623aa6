"""The typed results: :class:`Explanation` (:func:`gaflow.explain`) and
:class:`GenerationExplanation` (:func:`gaflow.explain_generation`), with one exact JSON round trip
(:class:`JsonResult`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

FORMAT_VERSION = 1


def _plain(value):
    """``value`` with NumPy arrays and scalars, tuples and nested containers as JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class JsonResult:
    """The JSON round trip of a result dataclass, exact (floats are written with ``repr``).

    A document is ``{"format_version": 1, ["kind": KIND,] field: value, ...}`` in field order;
    an optional field that is ``None`` is left out. Subclasses set ``KIND`` (``None``: no
    ``kind`` key, as :class:`Explanation` documents have always been written) and ``READERS``:
    per field, ``reader(value, document)`` turns the JSON value back into the field's type.
    """

    KIND: ClassVar[str | None] = None
    READERS: ClassVar[dict[str, Callable[[Any, dict], Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        if self.KIND is not None:
            out["kind"] = self.KIND
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = _plain(value)
        return out

    def to_json(self, indent: int | None = None) -> str:
        """JSON text; floats are written with ``repr`` so :meth:`from_json` is exact."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        version, kind = data.get("format_version"), data.get("kind")
        if version != FORMAT_VERSION or kind != cls.KIND:
            raise ValueError(f"unsupported {cls.__name__} document: format_version {version!r}, "
                             f"kind {kind!r} (expected {FORMAT_VERSION}, {cls.KIND!r})")
        kwargs = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                read = cls.READERS.get(f.name)
                kwargs[f.name] = data[f.name] if read is None else read(data[f.name], data)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()  # type: ignore[attr-defined]


def _floats(value, _data) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


@dataclass(eq=False)
class Explanation(JsonResult):
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

    READERS = {
        "scores": _floats,
        "special": lambda v, _: np.asarray(v, dtype=bool),
        "offsets": lambda v, _: [(int(a), int(b)) for a, b in v],
        "flows": lambda v, _: None if v is None else _floats(v, _),
        "target": lambda v, _: int(v),
        "predicted": lambda v, _: int(v),
        "probability": lambda v, _: float(v),
        "flow_value": lambda v, _: float(v),
    }

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

    def to_record(self) -> dict[str, Any]:
        """One flat row (Parquet / Arrow friendly): list columns for the per-token fields,
        ``words`` / ``word_scores`` from :meth:`words`, the config as JSON text. ``flows`` is
        not kept. :meth:`from_record` restores the explanation exactly."""
        words = self.words()
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "scores": [float(s) for s in self.scores],
            "special": [bool(s) for s in self.special],
            "word_ids": [None if w is None else int(w) for w in self.word_ids],
            "offsets": [[int(a), int(b)] for a, b in self.offsets],
            "words": [w for w, _ in words],
            "word_scores": [s for _, s in words],
            "target": int(self.target),
            "target_label": self.target_label,
            "probability": float(self.probability),
            "predicted": int(self.predicted),
            "method": self.method,
            "flow_value": float(self.flow_value),
            "config": json.dumps(self.config),
        }

    @classmethod
    def from_record(cls, row) -> Explanation:
        """The explanation of a :meth:`to_record` row: a dict, a pandas row or a Ray row (list
        columns may come back as numpy arrays, a missing word id as ``None`` or NaN)."""

        def ints(values) -> list[int | None]:
            return [None if v is None or v != v else int(v) for v in values]

        config = row["config"]
        return cls(
            text=str(row["text"]),
            tokens=[str(t) for t in row["tokens"]],
            scores=np.asarray(list(row["scores"]), dtype=np.float64),
            special=np.asarray(list(row["special"]), dtype=bool),
            word_ids=ints(row["word_ids"]),
            offsets=[(int(a), int(b)) for a, b in row["offsets"]],
            target=int(row["target"]),
            target_label=str(row["target_label"]),
            probability=float(row["probability"]),
            predicted=int(row["predicted"]),
            method=str(row["method"]),
            flow_value=float(row["flow_value"]),
            config=json.loads(config) if isinstance(config, str) else dict(config),
        )


@dataclass(eq=False)
class GenerationExplanation(JsonResult):
    """Per generated token, the share of the flow each earlier token carries.

    Attributes:
        prompt: the input text (the source text for an encoder-decoder).
        tokens: the players' tokens: for a decoder, prompt + generated tokens (n + k); for an
            encoder-decoder, source tokens (S) then decoder tokens (start token + generated).
        generated: the k generated (or scored) tokens.
        scores: (k, len(tokens)); row r is the attribution of generated token r. A player that
            comes after the position read out for row r gets exactly 0 (causality).
        flow_values: (k,) the flow value of each row (= the row sum: efficiency).
        n_source: number of source tokens (0 for a decoder; then the first n_prompt tokens
            are the prompt).
        n_prompt: number of prompt tokens (decoder) or of source tokens (encoder-decoder).
        architecture: ``"decoder"`` or ``"encoder-decoder"``.
        method: ``agf``, ``af`` or ``gf``.
        config: options, model and versions.
    """

    prompt: str
    tokens: list[str]
    generated: list[str]
    scores: np.ndarray
    flow_values: np.ndarray
    n_source: int
    n_prompt: int
    architecture: str
    method: str
    config: dict[str, Any] = field(default_factory=dict)

    KIND = "generation"
    READERS = {
        "scores": lambda v, d: _floats(v, d).reshape(len(d["generated"]), len(d["tokens"])),
        "flow_values": _floats,
        "n_source": lambda v, _: int(v),
        "n_prompt": lambda v, _: int(v),
    }

    def shares(self) -> np.ndarray:
        """Rows divided by their flow value (each row sums to 1)."""
        v = np.where(self.flow_values > 0, self.flow_values, 1.0)
        return self.scores / v[:, None]

    def to_table(self, top: int = 3) -> str:
        """Plain-text table: each generated token with its ``top`` contributing tokens
        (:func:`gaflow.viz.text.generation_table`)."""
        from .viz.text import generation_table

        return generation_table(self, top=top)
