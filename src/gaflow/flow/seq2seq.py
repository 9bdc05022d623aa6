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
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


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
