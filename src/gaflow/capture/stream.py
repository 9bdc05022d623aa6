"""The residual stream of post-norm encoders (BERT, RoBERTa, ELECTRA, DistilBERT).

In a post-norm layer the stream ``h_l`` entering layer ``l`` and the attention block's output
``o_l`` meet in a sum that the layer's first LayerNorm reads:

    x_l = h_l + o_l,      o_l[i] = sum_{h, j} A^l_h[i, j] (v^l_{h, j} W_O^h) + b_O,
    h_{l+1} = LN2(LN1(x_l) + MLP(LN1(x_l))).

With every LayerNorm's scale held fixed (:mod:`gaflow.capture.linear_norm`) the target logit
is affine in ``x_l`` and gradient x activation splits it over the parts of ``x_l``: with
``g_l = dy/dx_l``, the attention part of token ``j`` in row ``i`` is
``sum_h A^l_h[i, j] dy/dA^l_h[i, j] = g_l[i] . (attention part of j)``, and the residual part is
``g_l[i] . h_l[i]``: both in the same units, which is what ``residual="gradient"`` puts on the
self-edge of token ``i`` at layer ``l``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import ModelError

#: Encoder model types whose layers are post-norm (residual sum -> LayerNorm), checked with a
#: tiny model in tests/test_stream.py. Add a type only after checking that property.
POST_NORM_ENCODERS: frozenset[str] = frozenset(
    {"bert", "roberta", "electra", "distilbert", "xlm-roberta", "camembert"}
)


def layer_modules(model: torch.nn.Module, n_layers: int) -> list[torch.nn.Module]:
    """The encoder's transformer layers: the first ``ModuleList`` of ``n_layers`` modules."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n_layers:
            return list(mod)
    raise ModelError(f"could not find the model's {n_layers} transformer layers")


def attention_norms(model: torch.nn.Module, n_layers: int) -> list[torch.nn.LayerNorm]:
    """Per layer, the LayerNorm that reads ``h_l + o_l`` (the first LayerNorm of the layer in a
    post-norm encoder)."""
    kind = getattr(getattr(model, "config", None), "model_type", None)
    if kind not in POST_NORM_ENCODERS:
        raise ModelError(
            f"residual='gradient' needs a post-norm encoder whose residual sum is known; model "
            f"type {kind!r} is not one of {', '.join(sorted(POST_NORM_ENCODERS))} "
            "(gaflow.capture.stream.POST_NORM_ENCODERS)"
        )
    return first_layer_norms(layer_modules(model, n_layers))


def first_layer_norms(layers: list[torch.nn.Module]) -> list[torch.nn.LayerNorm]:
    """Per layer, its first LayerNorm: in a post-norm layer the one that reads ``h_l + o_l``
    (also BART's and Marian's encoder and decoder layers, ``self_attn_layer_norm``)."""
    norms = []
    for k, layer in enumerate(layers):
        found = next((m for m in layer.modules() if isinstance(m, torch.nn.LayerNorm)), None)
        if found is None:
            raise ModelError(f"layer {k} has no LayerNorm")
        norms.append(found)
    return norms


@contextmanager
def norm_inputs(norms: list[torch.nn.Module], active: bool = True) -> Iterator[list]:
    """Record the input tensor of each module in ``norms`` during one forward pass, in order."""
    seen: list[torch.Tensor] = []
    if not active:
        yield seen
        return

    def hook(_module, args):
        seen.append(args[0])

    handles = [m.register_forward_pre_hook(hook) for m in norms]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def value_projections(model: torch.nn.Module, n_layers: int):
    """Per layer, ``(value, output)``: the attention's value projection and the projection of
    its heads' concatenated outputs (post-norm encoders: the value Linear named ``value`` or
    ``v_lin``, and the last Linear before the layer's first LayerNorm)."""
    attention_norms(model, n_layers)  # checks the architecture
    pairs = []
    for k, layer in enumerate(layer_modules(model, n_layers)):
        value = out = last = None
        for name, m in layer.named_modules():
            if isinstance(m, torch.nn.LayerNorm):
                out = last
                break
            if isinstance(m, torch.nn.Linear):
                last = m
                if name.split(".")[-1] in ("value", "v_lin"):
                    value = m
        if value is None or out is None:
            raise ModelError(f"layer {k}: could not find the value and output projections")
        pairs.append((value, out))
    return pairs


@contextmanager
def value_norms(model: torch.nn.Module, active: bool = True) -> Iterator[list]:
    """Record, per layer, the (B, H, t) norms ``|| v_{h, j} W_O^h ||`` of every head's
    transformed value vector (Kobayashi et al. 2020, *Attention is not only a weight*): token
    ``j``'s part of row ``i``'s attention output is ``sum_h A_h[i, j] v_{h, j} W_O^h``."""
    seen: list[torch.Tensor] = []
    if not active:
        yield seen
        return
    pairs = value_projections(model, layer_count(model))
    heads = head_count(model)

    def hook_for(out_proj):
        def hook(_module, _args, output):
            with torch.no_grad():
                b, t, d = output.shape
                v = output.reshape(b, t, heads, d // heads)  # (B, t, H, dh)
                w = out_proj.weight.reshape(out_proj.weight.shape[0], heads, d // heads)
                f = torch.einsum("bthe,ohe->bhto", v, w)  # (B, H, t, d_out)
                seen.append(f.norm(dim=-1))
        return hook

    handles = [value.register_forward_hook(hook_for(out)) for value, out in pairs]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def layer_count(model) -> int:
    """Transformer layers of the model, from its config."""
    return _config_int(model, ("num_hidden_layers", "n_layers", "num_layers"), "layers")


def head_count(model) -> int:
    """Attention heads per layer, from the model's config."""
    return _config_int(model, ("num_attention_heads", "n_heads", "num_heads"), "attention heads")


def _config_int(model, keys: tuple[str, ...], what: str) -> int:
    config = model.config
    for key in keys:
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    raise ModelError(f"the model config gives no number of {what}")
