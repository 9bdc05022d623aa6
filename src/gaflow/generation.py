"""Attention flow for generation: ``explain_generation`` for causal decoders (GPT-2, Llama, ...)
and encoder-decoders (T5, BART, Marian), one attribution row per generated token.

Data flow as for classifiers: capture (attentions + the gradient of the produced token's logit)
-> information tensor (af / gf / agf) -> flow graph (:mod:`gaflow.flow.seq2seq`) -> the same
barrier max-flow solver -> :class:`GenerationExplanation`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .batching import pad_ids
from .capture import differentiable, ensure_eager
from .capture.linear_norm import linear_norms as _linear_norms
from .errors import InputError, ModelError, UnknownNameError
from .flow.seq2seq import (
    check_residual,
    decoder_graph,
    encoder_decoder_graph,
    gradient_self_edges,
    with_residual,
    with_self_edges,
)
from .flow.tensors import INFORMATION_TENSORS
from .solvers import solve_flow

FORMAT_VERSION = 1


@dataclass
class GenerationExplanation:
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": "generation",
            "prompt": self.prompt,
            "tokens": list(self.tokens),
            "generated": list(self.generated),
            "scores": np.asarray(self.scores, float).tolist(),
            "flow_values": [float(v) for v in self.flow_values],
            "n_source": int(self.n_source),
            "n_prompt": int(self.n_prompt),
            "architecture": self.architecture,
            "method": self.method,
            "config": self.config,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationExplanation:
        if data.get("format_version") != FORMAT_VERSION or data.get("kind") != "generation":
            raise ValueError("not a GenerationExplanation document (format_version 1)")
        return cls(
            prompt=data["prompt"], tokens=list(data["tokens"]), generated=list(data["generated"]),
            scores=np.asarray(data["scores"], float).reshape(len(data["generated"]),
                                                             len(data["tokens"])),
            flow_values=np.asarray(data["flow_values"], float), n_source=int(data["n_source"]),
            n_prompt=int(data["n_prompt"]), architecture=data["architecture"],
            method=data["method"], config=data["config"],
        )

    @classmethod
    def from_json(cls, text: str) -> GenerationExplanation:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenerationExplanation):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def shares(self) -> np.ndarray:
        """Rows divided by their flow value (each row sums to 1)."""
        v = np.where(self.flow_values > 0, self.flow_values, 1.0)
        return self.scores / v[:, None]


#: Model types (decoders and encoder-decoders) whose residual stream is additive (pre-norm:
#: ``h + attn(norm(h)) + mlp(...)``, nothing applied to a sub-block's output after it is
#: added), as ``residual="gradient"`` needs. Add a type here only after checking that property.
PRE_NORM_MODEL_TYPES: set[str] = {
    "gpt2", "gpt_bigcode", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3",
    "phi3", "mbart", "t5", "mt5",
}


def _is_encoder_decoder(model) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


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


@torch.no_grad()
def greedy(model, ids: list[int], max_new_tokens: int, eos: int | None,
           decoder_start: int | None = None) -> list[int]:
    """Greedy continuation (no cache; short generations). Returns the new token ids."""
    device = next(model.parameters()).device
    new: list[int] = []
    for _ in range(max_new_tokens):
        if decoder_start is None:
            logits = model(input_ids=torch.tensor([ids + new], device=device)).logits
        else:
            logits = model(input_ids=torch.tensor([ids], device=device),
                           decoder_input_ids=torch.tensor([[decoder_start, *new]],
                                                          device=device)).logits
        nxt = int(logits[0, -1].argmax())
        new.append(nxt)
        if eos is not None and nxt == eos:
            break
    return new


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
            paper's construction), or ``"gradient"`` (pre-norm models, see
            ``PRE_NORM_MODEL_TYPES``): the self-edge is the positive gradient x activation of
            the stream's parts, in the units of ``agf``, with every gradient taken through
            linearised normalisations (docs/generation.md). ``None`` (default): ``"gradient"``
            where the model type supports it (on the planted copy tasks it peaks on the copied
            token where plain GAF mostly does not), else 0; the value used is in ``config``.
        cross_weight: encoder-decoders: share of a decoder node's inflow from cross-attention.
        mu: solver option as in :func:`gaflow.explain`.
        rtol: solver option as in :func:`gaflow.explain`.
    """
    if method not in ("agf", "af", "gf") and method not in INFORMATION_TENSORS:
        raise UnknownNameError(f"unknown method {method!r}; generation supports agf, af, gf")
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
    ensure_eager(model)
    model.eval()
    encdec = _is_encoder_decoder(model)
    if residual is None:
        pre_norm = getattr(model.config, "model_type", None) in PRE_NORM_MODEL_TYPES
        residual = "gradient" if pre_norm else 0.0
    _check_residual(model, residual)
    items = []
    for k, (p, c) in enumerate(zip(prompts, conts, strict=True)):
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"prompt #{k} is empty or not a string")
        items.append(_sequences(model, tokenizer, p, c, max_new_tokens, encdec, stop_at_eos))
    opts = dict(method=method, exclude_first=exclude_first, residual=residual,
                cross_weight=cross_weight, mu=mu, rtol=rtol)
    runner = _explain_encdec if encdec else _explain_decoder
    out = runner(model, tokenizer, prompts, items, opts)
    return out[0] if single else out


def _check_residual(model, residual) -> None:
    check_residual(residual)
    kind = getattr(model.config, "model_type", None)
    if residual == "gradient" and kind not in PRE_NORM_MODEL_TYPES:
        raise InputError(
            f"residual='gradient' needs an additive (pre-norm) residual stream; model type "
            f"{kind!r} is not among the checked ones "
            f"({', '.join(sorted(PRE_NORM_MODEL_TYPES))}: gaflow.generation."
            "PRE_NORM_MODEL_TYPES)")


@contextmanager
def _attention_outputs(model, active: bool = True) -> Iterator[list]:
    """Record every module's tuple output during a forward pass (when ``active``);
    :func:`_match_attention` then finds, for each returned attention tensor, the output of the
    module that made it."""
    seen: list = []
    if not active:
        yield seen
        return

    def hook(_module, _args, output):
        if isinstance(output, tuple):
            seen.append(output)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def _match_attention(seen: list, attentions) -> list[torch.Tensor]:
    """Per layer, the first element (the attention output, before the residual add) of the
    innermost module output that contains that layer's attention weights."""
    found = []
    for layer, att in enumerate(attentions):
        hit = next((o for o in seen if any(x is att for x in o)), None)  # innermost returns first
        if hit is None or not isinstance(hit[0], torch.Tensor) or hit[0].dim() != 3:
            raise ModelError(f"could not find the attention output of layer {layer}")
        found.append(hit[0])
    return found


def _sequences(model, tokenizer, prompt, continuation, max_new, encdec, stop_at_eos):
    """(source ids or prompt ids, generated ids, decoder start id)."""
    eos = tokenizer.eos_token_id if stop_at_eos else None
    if encdec:
        src = tokenizer(prompt)["input_ids"]
        start = model.config.decoder_start_token_id
        if start is None:
            raise ModelError("the model config has no decoder_start_token_id")
        if continuation is not None:
            gen = tokenizer(text_target=continuation, add_special_tokens=False)["input_ids"]
        else:
            gen = greedy(model, src, max_new, eos, decoder_start=start)
        if not gen:
            raise InputError("nothing to explain: the continuation has no tokens")
        return src, gen, start
    ids = tokenizer(prompt)["input_ids"]
    if continuation is not None:
        gen = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    else:
        gen = greedy(model, ids, max_new, eos)
    if not gen:
        raise InputError("nothing to explain: the continuation has no tokens")
    return ids, gen, None


def _np(ts) -> np.ndarray:
    return np.stack([t.detach().double().cpu().numpy() for t in ts], axis=1)  # (B, L, H, ., .)


def _config(model, opts, extra) -> dict:
    from .info import versions as _versions

    return {**opts, **extra, "model": getattr(model.config, "_name_or_path", "")
            or model.__class__.__name__, "model_class": model.__class__.__name__,
            "versions": _versions()}


def _explain_decoder(model, tokenizer, prompts, items, opts):
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # the last generated token is never read: inputs are prompt + generated[:-1]
    rows = [ids + gen[:-1] for ids, gen, _ in items]
    x, m = pad_ids(rows, pad, device)  # right padding: positions of real tokens are unchanged
    grad_res = opts["residual"] == "gradient"
    with torch.enable_grad(), differentiable(model), _linear_norms(model, grad_res), \
            _attention_outputs(model, grad_res) as seen:
        out = model(input_ids=x, attention_mask=m, output_attentions=True,
                    output_hidden_states=grad_res)
        if not out.attentions:
            raise ModelError("the model returned no attentions; load it with eager attention")
        att = _np(out.attentions)
        n_layers, heads = att.shape[1], att.shape[2]
        mids = _match_attention(seen, out.attentions) if grad_res else []
        seen.clear()
        if grad_res:
            hidden, attn_out = _np(out.hidden_states[:n_layers]), _np(mids)  # (B, L, t, d)
        k_max = max(len(gen) for _, gen, _ in items)
        scores = [np.zeros((len(gen), len(ids) + len(gen))) for ids, gen, _ in items]
        values = [np.zeros(len(gen)) for _, gen, _ in items]
        for r in range(k_max):
            picks = [(b, len(ids) - 1 + r, gen[r]) for b, (ids, gen, _) in enumerate(items)
                     if r < len(gen)]
            target = sum(out.logits[b, p, tok] for b, p, tok in picks)
            g = torch.autograd.grad(target, [*out.attentions, *mids], retain_graph=r < k_max - 1)
            grads = _np(g[:n_layers])
            g_mid = _np(g[n_layers:]) if grad_res else None
            for b, p, _ in picks:
                caps = _info(opts["method"], att[b][:, :, : p + 1, : p + 1],
                             grads[b][:, :, : p + 1, : p + 1], causal=True)
                if grad_res:
                    keep = slice(0, p + 1)
                    caps = with_self_edges(caps, gradient_self_edges(
                        g_mid[b][:, keep], hidden[b][:, keep], attn_out[b][:, keep], heads))
                else:
                    caps = with_residual(caps, opts["residual"])
                caps, outputs = decoder_graph(caps, p)
                mask = np.ones(p + 1, dtype=bool)
                if opts["exclude_first"] and p > 0:
                    mask[0] = False
                sol = solve_flow(caps, outputs, mu=opts["mu"], tokens=mask, rtol=opts["rtol"])
                scores[b][r, : p + 1] = sol.attributions
                values[b][r] = sol.value
    res = []
    for b, (ids, gen, _) in enumerate(items):
        toks = tokenizer.convert_ids_to_tokens(ids + gen)
        res.append(GenerationExplanation(
            prompt=prompts[b], tokens=toks, generated=toks[len(ids):], scores=scores[b],
            flow_values=values[b], n_source=0, n_prompt=len(ids), architecture="decoder",
            method=opts["method"], config=_config(model, opts, {"n_tokens": len(ids) + len(gen)}),
        ))
    return res


def _explain_encdec(model, tokenizer, prompts, items, opts):
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    src, src_m = pad_ids([s for s, _, _ in items], pad, device)
    dec, dec_m = pad_ids([[start, *gen[:-1]] for _, gen, start in items], pad, device)
    grad_res = opts["residual"] == "gradient"
    with torch.enable_grad(), differentiable(model), _linear_norms(model, grad_res), \
            _attention_outputs(model, grad_res) as seen:
        out = model(input_ids=src, attention_mask=src_m, decoder_input_ids=dec,
                    decoder_attention_mask=dec_m, output_attentions=True,
                    output_hidden_states=grad_res)
        groups = [out.encoder_attentions, out.decoder_attentions, out.cross_attentions]
        if not all(groups):
            raise ModelError("the model returned no attentions; load it with eager attention")
        flat = [a for g in groups for a in g]
        le, ld = len(groups[0]), len(groups[1])
        arrays = [_np(groups[0]), _np(groups[1]), _np(groups[2])]
        mids = [m for g in groups for m in _match_attention(seen, g)] if grad_res else []
        seen.clear()
        if grad_res:  # (B, L, t, d) streams and sub-block outputs
            h_enc, h_dec = _np(out.encoder_hidden_states[:le]), _np(out.decoder_hidden_states[:ld])
            a_enc, a_self, a_cross = _np(mids[:le]), _np(mids[le : le + ld]), _np(mids[le + ld :])
        k_max = max(len(gen) for _, gen, _ in items)
        shapes = [(len(s), len(gen)) for s, gen, _ in items]
        scores = [np.zeros((k, s + k)) for s, k in shapes]
        values = [np.zeros(k) for _, k in shapes]
        n = len(flat)
        for r in range(k_max):
            picks = [(b, gen[r]) for b, (_, gen, _) in enumerate(items) if r < len(gen)]
            target = sum(out.logits[b, r, tok] for b, tok in picks)
            g = torch.autograd.grad(target, [*flat, *mids[: le + ld]],
                                    retain_graph=r < k_max - 1)
            ge, gd, gc = _np(g[:le]), _np(g[le : le + ld]), _np(g[le + ld : n])
            if grad_res:
                gm_enc, gm_dec = _np(g[n : n + le]), _np(g[n + le :])
            for b, _ in picks:
                s, k = shapes[b]
                enc = _info(opts["method"], arrays[0][b][:, :, :s, :s], ge[b][:, :, :s, :s])
                dcs = _info(opts["method"], arrays[1][b][:, :, :k, :k], gd[b][:, :, :k, :k],
                            causal=True)
                crs = _info(opts["method"], arrays[2][b][:, :, :k, :s], gc[b][:, :, :k, :s])
                if grad_res:
                    enc = with_self_edges(enc, gradient_self_edges(
                        gm_enc[b][:, :s], h_enc[b][:, :s], a_enc[b][:, :s], arrays[0].shape[2]))
                    dcs = with_self_edges(dcs, gradient_self_edges(
                        gm_dec[b][:, :k], h_dec[b][:, :k], [a_self[b][:, :k], a_cross[b][:, :k]],
                        arrays[1].shape[2]))
                else:
                    enc = with_residual(enc, opts["residual"])
                    dcs = with_residual(dcs, opts["residual"])
                caps, outputs = encoder_decoder_graph(enc, dcs, crs, r, opts["cross_weight"])
                sol = solve_flow(caps, outputs, mu=opts["mu"], rtol=opts["rtol"])
                scores[b][r, : s + r + 1] = sol.attributions
                values[b][r] = sol.value
    res = []
    for b, (s_ids, gen, start) in enumerate(items):
        src_toks = tokenizer.convert_ids_to_tokens(s_ids)
        dec_toks = tokenizer.convert_ids_to_tokens([start, *gen[:-1]])
        res.append(GenerationExplanation(
            prompt=prompts[b], tokens=src_toks + dec_toks,
            generated=tokenizer.convert_ids_to_tokens(gen), scores=scores[b],
            flow_values=values[b], n_source=len(s_ids), n_prompt=len(s_ids),
            architecture="encoder-decoder", method=opts["method"],
            config=_config(model, opts, {"n_source": len(s_ids), "n_generated": len(gen)}),
        ))
    return res


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


def generation_table(exp: GenerationExplanation, top: int = 3) -> str:
    """Plain-text table: each generated token with its ``top`` contributing tokens (shares)."""
    lines = [f"{exp.method} attention flow · {exp.architecture} · prompt: {exp.prompt!r}",
             f"{'#':>3}  {'generated':<14} {'flow':>10}  top contributors (share of the flow)"]
    shares = exp.shares()
    for r, tok in enumerate(exp.generated):
        order = np.argsort(-shares[r], kind="stable")[:top]
        who = ", ".join(f"{exp.tokens[j]}@{j} {shares[r, j]:.0%}" for j in order
                        if shares[r, j] > 0)
        lines.append(f"{r:>3}  {tok:<14} {exp.flow_values[r]:>10.4g}  {who}")
    return "\n".join(lines) + "\n"
