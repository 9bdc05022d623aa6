"""Layered flow networks for generation: causal decoders and encoder-decoders.

Pure array code (no model knowledge). Capacities follow the solver's convention:
``caps[l, i, j]`` is the edge from node ``j`` at layer ``l`` to node ``i`` at layer ``l+1``.

**Decoder-only.** For the token read out at position ``p``, the players are positions ``0..p``;
the capacities are the information tensor restricted to them (causal, so ``j <= i``) and the
output set is ``{(L, p)}``.

**Encoder-decoder.** One layered graph of width ``S + T`` (``S`` source tokens, then ``T``
decoder-input tokens) and ``Le + Ld`` layers::

    layers 0..Le-1 (encoder):     source block  = encoder self-attention tensor   (S x S)
                                  decoder block = carry * I  (prefix tokens wait)  (T x T)
    layers Le..Le+Ld-1 (decoder): source block  = carry * I  (encoder output copied on)
                                  decoder block = (1 - w) * decoder self-attention (T x T, causal)
                                  decoder <- source block = w * cross-attention    (T x S)

The super-source feeds every source token and every decoder-input token at layer 0; the output
set is ``{(Le + Ld, S + p)}``. The copies make the final encoder states reachable from every
decoder layer (cross-attention reads them there) while the graph stays layered, so the same
block-tridiagonal solver applies and flow is conserved at every node. ``w`` (``cross_weight``,
default 0.5) splits each decoder node's inflow between its own prefix and the source; ``carry``
(default: the largest capacity) is large enough never to be the bottleneck.

**Residual option.** ``residual = r`` replaces each self-attention block ``C`` by
``(1 - r) C + r diag(rowsum C)``: every node also keeps a share of its own stream, the
generalisation of Abnar & Zuidema's ``0.5 A + 0.5 I`` to capacities that do not sum to 1.

**Gradient residual** (``residual="gradient"``, pre-norm decoders). The self-edge of node ``i``
at layer ``l`` is measured like the attention edges instead of being a fixed share: the stream
entering layer ``l`` is a sum of parts (the embeddings, and the attention and MLP outputs of
every earlier layer) and each part contributes ``g · part`` to the target logit, ``g`` being the
gradient at layer ``l``'s attention output (for an additive stream ``a = h + attn``, the gradient
at ``a``). The self-edge gets ``(1 / H) Σ_parts max(g · part, 0)``: the positive part at the
finest split, in the units of ``agf = mean_h max(A ∘ ∇A, 0)`` (summed over heads and keys,
``A ∘ ∇A`` is ``g · attn`` up to the output bias). The caller takes every gradient with the
normalisations' scales held fixed (``gaflow.generation``): a LayerNorm is scale invariant, so
otherwise the ``g · part`` of a stream would sum to zero.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def check_residual(residual) -> None:
    """The residual option of generation and of flow constructions: a share in [0, 1] or
    ``"gradient"`` (which architectures allow it is the caller's check)."""
    if residual == "gradient":
        return
    if isinstance(residual, bool | str) or not isinstance(residual, int | float) \
            or not 0 <= residual <= 1:
        raise InputError(f"residual must be a number in [0, 1] or 'gradient', got {residual!r}")


def with_residual(caps: np.ndarray, residual: float) -> np.ndarray:
    """(L, t, t) -> (1 - r) C + r diag(rowsum C), per layer."""
    if not 0 <= residual <= 1:
        raise InputError(f"residual must lie in [0, 1], got {residual!r}")
    if residual == 0:
        return caps
    rows = caps.sum(axis=-1)
    out = (1 - residual) * caps
    idx = np.arange(caps.shape[-1])
    out[:, idx, idx] += residual * rows
    return out


def with_self_edges(caps: np.ndarray, self_edges: np.ndarray) -> np.ndarray:
    """(L, t, t) capacities with the (L, t) ``self_edges`` added to each layer's diagonal."""
    if self_edges.shape != caps.shape[:2]:
        raise InputError(f"self-edges of shape {self_edges.shape} do not fit capacities "
                         f"{caps.shape}")
    out = caps.copy()
    idx = np.arange(caps.shape[-1])
    out[:, idx, idx] += self_edges
    return out


def decoder_graph(caps: np.ndarray, position: int) -> tuple[np.ndarray, list[int]]:
    """Capacities and output set for the token read out at ``position`` of a causal decoder."""
    if not 0 <= position < caps.shape[-1]:
        raise InputError(f"position {position} outside 0..{caps.shape[-1] - 1}")
    sub = caps[:, : position + 1, : position + 1]
    if np.any(np.triu(sub, k=1) > 0):
        raise InputError("decoder capacities must be causal (no edge from a later position)")
    return sub, [position]


def encoder_decoder_graph(
    encoder: np.ndarray,
    decoder: np.ndarray,
    cross: np.ndarray,
    position: int,
    cross_weight: float = 0.5,
    carry: float | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Combined layered capacities ``(Le + Ld, S + P, S + P)`` for decoder position ``position``
    (``P = position + 1`` decoder tokens kept) and its output set.

    Args:
        encoder: (Le, S, S) encoder self-attention capacities.
        decoder: (Ld, T, T) causal decoder self-attention capacities.
        cross: (Ld, T, S) cross-attention capacities (row = decoder token, column = source).
    """
    le, s, s2 = encoder.shape
    ld, t, t2 = decoder.shape
    if s != s2 or t != t2 or cross.shape != (ld, t, s):
        raise InputError(
            f"shapes do not fit: encoder {encoder.shape}, decoder {decoder.shape}, "
            f"cross {cross.shape} (expected (Ld, T, S))"
        )
    if not 0 <= cross_weight <= 1:
        raise InputError(f"cross_weight must lie in [0, 1], got {cross_weight!r}")
    if not 0 <= position < t:
        raise InputError(f"position {position} outside 0..{t - 1}")
    p = position + 1
    dec, crs = decoder[:, :p, :p], cross[:, :p, :]
    if carry is None:
        carry = max(float(encoder.max(initial=0)), float(dec.max(initial=0)),
                    float(crs.max(initial=0)), 1e-300)
    w = s + p
    caps = np.zeros((le + ld, w, w))
    caps[:le, :s, :s] = encoder
    caps[:le, s:, s:] = carry * np.eye(p)
    caps[le:, :s, :s] = carry * np.eye(s)
    caps[le:, s:, s:] = (1 - cross_weight) * dec
    caps[le:, s:, :s] = cross_weight * crs
    return caps, [s + position]


def gradient_self_edges(grads: np.ndarray, hidden: np.ndarray,
                        sublayers: np.ndarray | list[np.ndarray], heads: int) -> np.ndarray:
    """Self-edge capacities of ``residual="gradient"`` (see the module docstring).

    Args:
        grads: (L, t, d) gradient of the target at each layer's (self-)attention output.
        hidden: (L, t, d) stream entering each layer (``hidden[0]`` = embeddings).
        sublayers: one (L, t, d) array per attention sub-block (self-attention; for an
            encoder-decoder's decoder also cross-attention): each layer's output of it, before
            it is added to the stream. The rest of a layer's update is its MLP.
        heads: attention heads per layer (the head mean of ``agf``).

    Returns:
        (L, t) non-negative self-edge capacities, to add to the diagonal of the capacities.
    """
    subs = [sublayers] if isinstance(sublayers, np.ndarray) else list(sublayers)
    if grads.ndim != 3 or any(a.shape != grads.shape for a in (hidden, *subs)) or not subs:
        raise InputError(f"shapes do not fit: grads {grads.shape}, hidden {hidden.shape}, "
                         f"sublayers {[a.shape for a in subs]} (expected equal (L, t, d))")
    n_layers = grads.shape[0]
    parts = [hidden[0]]
    for k in range(n_layers - 1):  # stream(k + 1) = stream(k) + sub-blocks(k) + mlp(k)
        parts += [a[k] for a in subs] + [hidden[k + 1] - hidden[k] - sum(a[k] for a in subs)]
    contrib = np.maximum(np.einsum("lid,kid->lki", grads, np.stack(parts)), 0.0)  # (L, P, t)
    per_layer = len(subs) + 1  # layer l reads the embeddings and l layers' parts
    used = np.arange(len(parts))[None, :] <= per_layer * np.arange(n_layers)[:, None]
    return np.einsum("lki,lk->li", contrib, used.astype(float)) / heads


def stream_self_edges(grads: np.ndarray, hidden: np.ndarray, heads: int) -> np.ndarray:
    """Self-edge capacities of ``residual="gradient"`` for a post-norm stack (BART, Marian):
    ``max(g_l[i] . h_l[i], 0) / H``.

    In a post-norm layer the stream ``h_l`` and the self-attention output meet in the sum
    ``x_l = h_l + o_l`` that the layer's first LayerNorm reads; ``g_l`` is the gradient at
    ``x_l`` (normalisations linearised). Each LayerNorm rescales the stream, so it is not a sum
    of the earlier layers' outputs and is taken as one part (the encoder classifiers' self-edge,
    :mod:`gaflow.capture.stream`).

    Args:
        grads: (L, t, d) gradient of the target at each layer's residual sum.
        hidden: (L, t, d) stream entering each layer.
        heads: attention heads per layer (the head mean of ``agf``).

    Returns:
        (L, t) non-negative self-edge capacities.
    """
    if grads.ndim != 3 or hidden.shape != grads.shape:
        raise InputError(f"shapes do not fit: grads {grads.shape}, hidden {hidden.shape} "
                         "(expected equal (L, t, d))")
    return np.maximum(np.einsum("lid,lid->li", grads, hidden), 0.0) / heads
