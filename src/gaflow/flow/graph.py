"""The layered attribution graph of GAF (Azarkhalili & Libbrecht 2025, Sec. 3, Algorithm 1).

Nodes: the super-source ``s``, token ``i`` at layer ``l`` (``l = 0..L``, layer 0 = input
embeddings) and the super-sink ``z``. Edges:

* ``s -> (0, j)`` for every token ``j`` (uncapacitated),
* ``(l, j) -> (l+1, i)`` with capacity ``caps[l, i, j]`` (row ``i`` receives, column ``j`` sends),
* ``(L, i) -> z`` for every token ``i`` of the output set (uncapacitated),
* the return edge ``z -> s`` whose flow is the flow value ``F``.

Edges of capacity 0 are absent, and an edge that lies on no ``s -> z`` path is pruned: it could
only carry zero flow, which the log barrier forbids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class LayeredGraph:
    """A pruned, normalised layered flow network.

    Attributes:
        caps: (L, t, t) capacities divided by ``scale``; 0 on every pruned edge.
        live: (L, t, t) bool, the edges that exist after pruning.
        source: (t,) bool, live edges ``s -> (0, j)``.
        sink: (t,) bool, live edges ``(L, i) -> z``.
        nodes: (L+1, t) bool, the nodes that lie on some ``s -> z`` path.
        scale: the largest capacity among real tokens (flows are reported multiplied by it).
    """

    caps: np.ndarray
    live: np.ndarray
    source: np.ndarray
    sink: np.ndarray
    nodes: np.ndarray
    scale: float

    @property
    def n_layers(self) -> int:
        return self.caps.shape[0]

    @property
    def n_tokens(self) -> int:
        return self.caps.shape[1]

    @property
    def empty(self) -> bool:
        """True when no ``s -> z`` path exists (the maximum flow is 0)."""
        return not bool(self.source.any())


def check_capacities(capacities: np.ndarray) -> np.ndarray:
    """Validate a capacity tensor and return it as float64 (L, t, t)."""
    caps = np.asarray(capacities)
    if caps.dtype == object or not np.issubdtype(caps.dtype, np.number):
        raise InputError(f"capacities must be a numeric array, got dtype {caps.dtype}")
    if caps.ndim != 3 or caps.shape[1] != caps.shape[2]:
        raise InputError(
            f"capacities must have shape (L, t, t) (layers, receiving token, sending token); "
            f"got shape {caps.shape}"
        )
    if caps.shape[0] < 1 or caps.shape[1] < 1:
        raise InputError(f"capacities need at least one layer and one token; got {caps.shape}")
    caps = caps.astype(np.float64, copy=False)
    if not np.isfinite(caps).all():
        bad = np.argwhere(~np.isfinite(caps))[0]
        raise InputError(f"capacities contain NaN or inf (first at layer/row/col {tuple(bad)})")
    if (caps < 0).any():
        bad = np.argwhere(caps < 0)[0]
        raise InputError(
            f"capacities must be >= 0; found {caps[tuple(bad)]:.3g} at layer/row/col {tuple(bad)}"
        )
    return caps


def output_mask(outputs: Sequence[int] | None, n_tokens: int) -> np.ndarray:
    """(t,) bool mask of the output set; ``None`` means every token."""
    mask = np.zeros(n_tokens, dtype=bool)
    if outputs is None:
        mask[:] = True
        return mask
    idx = list(outputs)
    if not idx:
        raise InputError("outputs must name at least one token position (or be None for all)")
    for i in idx:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise InputError(f"outputs must be integer positions, got {i!r}")
        if not -n_tokens <= int(i) < n_tokens:
            raise InputError(f"output position {i} is out of range for {n_tokens} tokens")
        mask[int(i)] = True
    return mask


def build_graph(
    capacities: np.ndarray,
    outputs: Sequence[int] | None = None,
    tokens: np.ndarray | None = None,
) -> LayeredGraph:
    """Build the pruned, normalised layered graph.

    Args:
        capacities: (L, t, t) non-negative capacities, ``caps[l, i, j]`` on edge
            ``(l, j) -> (l+1, i)``.
        outputs: output-set token positions (``None``: all tokens).
        tokens: optional (t,) bool mask of real tokens; others (padding) are not nodes.
    """
    # C order: the solver works on blocks of rows, which a transposed or Fortran-ordered input
    # (as slicing captured attentions gives) would turn into strided, cache-hostile reads
    caps = np.ascontiguousarray(check_capacities(capacities))
    n_layers, t, _ = caps.shape
    out = output_mask(outputs, t)
    real = np.ones(t, dtype=bool) if tokens is None else np.asarray(tokens, dtype=bool)
    if real.shape != (t,):
        raise InputError(f"token mask must have shape ({t},), got {real.shape}")
    positive = (caps > 0) & real[None, :, None] & real[None, None, :]

    # forward reachability from s, backward reachability to z
    fwd = np.zeros((n_layers + 1, t), dtype=bool)
    fwd[0] = real
    for k in range(n_layers):
        fwd[k + 1] = (positive[k] & fwd[k][None, :]).any(axis=1)
    bwd = np.zeros((n_layers + 1, t), dtype=bool)
    bwd[n_layers] = out & real
    for k in range(n_layers - 1, -1, -1):
        bwd[k] = (positive[k] & bwd[k + 1][:, None]).any(axis=0)

    nodes = fwd & bwd
    live = positive & nodes[:-1][:, None, :] & nodes[1:][:, :, None]
    top = float(np.where(positive, caps, 0.0).max())
    scale = top if top > 0 else 1.0
    norm = np.where(live, caps / scale, 0.0)
    return LayeredGraph(
        caps=norm,
        live=live,
        source=nodes[0].copy(),
        sink=nodes[n_layers] & out,
        nodes=nodes,
        scale=scale,
    )
