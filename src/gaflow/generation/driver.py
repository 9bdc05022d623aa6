"""``explain_generation``: one driver for decoders and encoder-decoders.

Per batch of prompts: token ids (greedy ``generate`` or the given continuation) -> one forward
pass with attentions (and, for ``residual="gradient"``, the residual stream's parts with the
normalisations linearised) -> per generated position r, one backward pass of the produced
token's logit -> information tensor (af / gf / agf) + residual self-edges per stack -> the
strategy's layered graph (:mod:`gaflow.flow.seq2seq`) -> every graph of the batch in one
:func:`~gaflow.solvers.solve_flow` call -> :class:`~gaflow.result.GenerationExplanation`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import validate
from ..capture import differentiable, ensure_eager
from ..capture.linear_norm import linear_norms
from ..capture.stream import first_layer_norms, norm_inputs
from ..capture.sublayers import attention_outputs, match_attention
from ..errors import InputError, ModelError, UnknownNameError
from ..flow.seq2seq import (
    check_residual,
    gradient_self_edges,
    stream_self_edges,
    with_residual,
    with_self_edges,
)
from ..flow.tensors import INFORMATION_TENSORS
from ..info import versions
from ..result import GenerationExplanation
from ..solvers import solve_flow
from .strategies import Item, Stack, strategy_for

#: Model types (decoders and encoder-decoders) whose residual stream is additive (pre-norm:
#: ``h + attn(norm(h)) + mlp(...)``, nothing applied to a sub-block's output after it is
#: added), as ``residual="gradient"`` needs. Add a type here only after checking that property.
PRE_NORM_MODEL_TYPES: set[str] = {
    "gpt2", "gpt_bigcode", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3",
    "phi3", "mbart", "t5", "mt5",
}

#: Encoder-decoder types whose layers are post-norm (``LN(h + attn(h))``, BART's layout), as
#: ``residual="gradient"`` reads them: the stream entering a layer and its self-attention output
#: meet in a sum that the layer's first LayerNorm reads (checked in tests/test_generation.py).
POST_NORM_MODEL_TYPES: set[str] = {"bart", "marian"}


def explain_generation(
    model,
    tokenizer,
    prompt: str | Sequence[str],
    max_new_tokens: int = 8,
    method: str = "agf",
    *,
    continuation: str | Sequence[str] | None = None,
    exclude_first: bool = False,
    residual: float | str | None = None,
    cross_weight: float = 0.5,
    mu: float | None = None,
    rtol: float = 1e-6,
    stop_at_eos: bool = True,
    backend: str = "numpy",
    device: str | None = None,
) -> GenerationExplanation | list[GenerationExplanation]:
    """Explain each token a decoder or encoder-decoder generates (greedy) or is given.

    Args:
        prompt: the prompt (decoder) or source text (encoder-decoder); a list gives a list.
        max_new_tokens: tokens to generate greedily (ignored with ``continuation``).
        method: ``agf`` (default), ``af`` or ``gf``.
        continuation: score this text instead of generating (tokenized without special tokens).
        exclude_first: leave the first position out of the graph (decoders; the first token is
            an attention sink that otherwise collects most of the flow, see README).
        residual: share of each node's own stream kept as a self-edge (0 = plain GAF, the
            paper's construction), or ``"gradient"``: the self-edge is the positive gradient x
            activation of the stream's parts (pre-norm models, ``PRE_NORM_MODEL_TYPES``) or of
            the stream at each layer's first residual sum (post-norm encoder-decoders,
            ``POST_NORM_MODEL_TYPES``), in the units of ``agf``, with every gradient taken
            through linearised normalisations (docs/generation.md). ``None`` (default):
            ``"gradient"`` for every type it supports (on the planted copy tasks it peaks on
            the copied token where plain GAF mostly does not), else 0; the value used is in
            ``config``.
        cross_weight: encoder-decoders: share of a decoder node's inflow from cross-attention.
        mu: solver option as in :func:`gaflow.explain`.
        rtol: solver option as in :func:`gaflow.explain`.
        stop_at_eos: end a greedy generation at the tokenizer's end-of-sequence token.
        backend: flow solver, ``"numpy"`` (one graph at a time) or ``"torch"`` (all graphs of
            the call solved together, batched Cholesky); see :func:`gaflow.solve_flow`.
        device: torch device of the ``"torch"`` solver (default: CPU).
    """
    if validate.name(method, "method") not in INFORMATION_TENSORS:
        raise UnknownNameError(f"unknown method {method!r}; generation takes an information "
                               f"tensor: {', '.join(INFORMATION_TENSORS)}")
    single = isinstance(prompt, str)
    prompts = [prompt] if single else list(prompt)
    conts = (
        [continuation] * len(prompts) if isinstance(continuation, str) or continuation is None
        else list(continuation)
    )
    if len(conts) != len(prompts):
        raise InputError("give one continuation per prompt")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    mu, rtol = validate.mu(mu), validate.rtol(rtol)
    backend = validate.backend(backend)
    validate.device(backend, device)
    ensure_eager(model)
    model.eval()
    if residual is None:
        kind = getattr(model.config, "model_type", None)
        residual = "gradient" if kind in PRE_NORM_MODEL_TYPES | POST_NORM_MODEL_TYPES else 0.0
    _check_residual(model, residual)
    strategy = strategy_for(model)
    eos = tokenizer.eos_token_id if stop_at_eos else None
    items = []
    for k, (p, c) in enumerate(zip(prompts, conts, strict=True)):
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"prompt #{k} is empty or not a string")
        items.append(strategy.item(model, tokenizer, p, c, max_new_tokens, eos))
    opts = dict(method=method, exclude_first=exclude_first, residual=residual,
                cross_weight=cross_weight, mu=mu, rtol=rtol, backend=backend)
    graphs = _graphs(model, tokenizer, strategy, items, opts)
    solutions = solve_flow([c for _, _, c, _, _ in graphs], [o for _, _, _, o, _ in graphs],
                           mu=mu, tokens=[m for *_, m in graphs], rtol=rtol, backend=backend,
                           device=device)
    # one row per generated token, one column per player (prompt or source, then the rest)
    scores = [np.zeros((len(it.generated), len(it.ids) + len(it.generated))) for it in items]
    values = [np.zeros(len(it.generated)) for it in items]
    for (b, r, *_), sol in zip(graphs, solutions, strict=True):
        scores[b][r, : sol.attributions.size] = sol.attributions
        values[b][r] = sol.value
    out = [strategy.result(tokenizer, it, scores[b], values[b], method,
                           _config(model, opts, strategy.extra(it)))
           for b, it in enumerate(items)]
    return out[0] if single else out


def _check_residual(model, residual) -> None:
    check_residual(residual)
    kind = getattr(model.config, "model_type", None)
    if residual == "gradient" and kind not in PRE_NORM_MODEL_TYPES | POST_NORM_MODEL_TYPES:
        raise InputError(
            f"residual='gradient' needs a residual stream of known layout, pre-norm "
            f"({', '.join(sorted(PRE_NORM_MODEL_TYPES))}) or post-norm encoder-decoder "
            f"({', '.join(sorted(POST_NORM_MODEL_TYPES))}); model type {kind!r} is not among "
            "the checked ones (gaflow.generation.PRE_NORM_MODEL_TYPES, POST_NORM_MODEL_TYPES)")


def _info(method: str, a: np.ndarray, g: np.ndarray, causal: bool = False) -> np.ndarray:
    """Information tensor of (L, H, q, k) attention and gradient. ``causal`` zeroes the entries
    above the diagonal: the attention there is structurally 0 but its gradient is not, and a
    future token must not become a player (matters for ``gf``)."""
    caps = np.asarray(INFORMATION_TENSORS[method](a, g), dtype=np.float64)
    if causal:
        caps = np.tril(caps)
    if not np.isfinite(caps).all() or (caps < 0).any():
        raise InputError(f"information tensor {method!r} returned negative or non-finite values")
    return caps


def _np(ts) -> np.ndarray:
    """Per-layer (B, ...) tensors -> one (B, L, ...) float64 array."""
    return np.stack([t.detach().double().cpu().numpy() for t in ts], axis=1)


def _config(model, opts, extra) -> dict:
    return {**opts, **extra, "model": getattr(model.config, "_name_or_path", "")
            or model.__class__.__name__, "model_class": model.__class__.__name__,
            "versions": versions()}


class _Recorded:
    """One stack's arrays (B, L, ...): attention and cross-attention weights, and for the
    gradient residual the stream entering each layer and, pre-norm, the sub-blocks' outputs
    (``mids``: the self-attention outputs, whose gradients are taken) or, post-norm, the
    residual sums the layers' first LayerNorms read (``sums``, gradients taken)."""

    def __init__(self, stack: Stack, seen: list | None, sums: list | None = None):
        self.stack = stack
        self.att = _np(stack.attentions)
        self.heads = self.att.shape[2]
        self.cross = None if stack.cross is None else _np(stack.cross)
        self.mids: list[torch.Tensor] = []
        self.sums: list[torch.Tensor] = sums or []
        n_layers = len(stack.attentions)
        if seen is not None or sums:  # residual="gradient"
            self.hidden = _np(stack.hidden[:n_layers])
        if seen is not None:  # pre-norm: the stream split into its parts
            self.mids = match_attention(seen, stack.attentions)
            subs = [self.mids] + ([] if stack.cross is None else
                                  [match_attention(seen, stack.cross)])
            self.subs = [_np(s) for s in subs]

    def targets(self) -> list[torch.Tensor]:
        """What the gradient is taken with respect to (the order :meth:`gradients` reads)."""
        return [*self.stack.attentions, *(self.stack.cross or ()), *self.mids, *self.sums]

    def gradients(self, grads: Sequence[torch.Tensor]) -> tuple:
        """The gradients of :meth:`targets` as (B, L, ...) arrays: attention, cross-attention
        (``None`` without), sub-block outputs or residual sums (``None`` without the gradient
        residual)."""
        n = len(self.stack.attentions)
        return (_np(grads[:n]), None if self.cross is None else _np(grads[n : 2 * n]),
                _np(grads[-n:]) if self.mids or self.sums else None)

    def blocks(self, grads: tuple, b: int, n: int, m: int, opts) -> tuple:
        """Example ``b``'s (self, cross) capacities over its first ``n`` positions (cross-
        attention into the first ``m`` positions of the previous stack; ``None`` without)."""
        g_att, g_cross, g_mid = grads
        own = _info(opts["method"], self.att[b][:, :, :n, :n], g_att[b][:, :, :n, :n],
                    causal=self.stack.causal)
        cross = None
        if self.cross is not None:
            cross = _info(opts["method"], self.cross[b][:, :, :n, :m], g_cross[b][:, :, :n, :m])
        if self.mids:
            own = with_self_edges(own, gradient_self_edges(
                g_mid[b][:, :n], self.hidden[b][:, :n], [s[b][:, :n] for s in self.subs],
                self.heads))
        elif self.sums:
            own = with_self_edges(own, stream_self_edges(
                g_mid[b][:, :n], self.hidden[b][:, :n], self.heads))
        else:
            own = with_residual(own, opts["residual"])
        return own, cross


def _graphs(model, tokenizer, strategy, items: list[Item], opts) -> list[tuple]:
    """Every (example b, row r, capacities, outputs, token mask) graph of the batch."""
    device = next(model.parameters()).device
    grad_res = opts["residual"] == "gradient"
    post_norm = grad_res and getattr(model.config, "model_type", None) in POST_NORM_MODEL_TYPES
    norms = [first_layer_norms(layers) for layers in strategy.layers(model)] if post_norm else []
    graphs = []
    with torch.enable_grad(), differentiable(model), linear_norms(model, grad_res), \
            attention_outputs(model, grad_res and not post_norm) as seen, \
            norm_inputs([m for ns in norms for m in ns], post_norm) as sums:
        out = model(**strategy.inputs(tokenizer, items, device), output_attentions=True,
                    output_hidden_states=grad_res)
        if post_norm:  # every stack's residual sums, in the order the layers ran
            if len(sums) != sum(len(ns) for ns in norms):
                raise ModelError(f"found {len(sums)} residual sums for "
                                 f"{sum(len(ns) for ns in norms)} layers")
            cuts = np.cumsum([0, *(len(ns) for ns in norms)])
            per = [sums[a:z] for a, z in zip(cuts[:-1], cuts[1:], strict=True)]
            stacks = [_Recorded(s, None, p) for s, p in zip(strategy.stacks(out), per,
                                                           strict=True)]
        else:
            stacks = [_Recorded(s, seen if grad_res else None) for s in strategy.stacks(out)]
        seen.clear()
        wrt = [t for s in stacks for t in s.targets()]
        k_max = max(len(it.generated) for it in items)
        for r in range(k_max):
            picks = [b for b, it in enumerate(items) if r < len(it.generated)]
            target = sum(out.logits[b, strategy.readout(items[b], r), items[b].generated[r]]
                         for b in picks)
            grads = torch.autograd.grad(target, wrt, retain_graph=r < k_max - 1)
            per_stack, start = [], 0
            for s in stacks:
                per_stack.append(s.gradients(grads[start : start + len(s.targets())]))
                start += len(s.targets())
            for b in picks:
                n = strategy.extents(items[b], r)
                blocks = [s.blocks(g, b, n[k], n[k - 1] if k else 0, opts)
                          for k, (s, g) in enumerate(zip(stacks, per_stack, strict=True))]
                graphs.append((b, r, *strategy.graph(items[b], r, blocks, opts)))
    return graphs


def load_generator(name_or_path: str):
    """Load a causal LM or a seq2seq model and its tokenizer with eager attention."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise InputError("--model is required for --generate (a hub id or local directory)")
    try:
        config = AutoConfig.from_pretrained(name_or_path)
        cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = cls.from_pretrained(name_or_path, attn_implementation="eager")
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise InputError(f"could not load generator {name_or_path!r}: {exc}") from exc
    return model.eval(), tokenizer
