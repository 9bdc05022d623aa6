"""Proportional routing: the largest flow that splits in proportion to capacity at every node.

On the pruned layered graph of :mod:`gaflow.flow.graph` (``caps[l, i, j]`` on the edge
``(l, j) -> (l+1, i)``), the output demand is routed backwards, the way attention rollout
(Abnar & Zuidema 2020) routes relevance: a node ``(l+1, i)`` that passes on ``x[l+1, i]`` draws
it from its live in-edges in proportion to their capacities,

    f[l, i, j] = x[l+1, i] * caps[l, i, j] / sum_k caps[l, i, k],      x[l, j] = sum_i f[l, i, j],

and the output demand of a sink node is in proportion to its in-capacity. The result is a flow:
conservation holds at every node, so the attributions ``phi_j = x[0, j]`` (the flow on
``s -> (0, j)``) sum to the flow value ``F`` (efficiency); a token with no path to the output
gets exactly 0 (nullity); tokens whose edges are interchangeable get equal shares (symmetry).
``F`` is the largest multiple of this routing that every capacity admits:
``F = 1 / max_e (f_e / u_e)`` for the unit-value routing ``f``.

Unlike the central maximum flow, the split at a node does not depend on upstream slack, so a
bottleneck at the output (the [CLS] row of a classifier's last layer) does not flatten the
attribution of the inputs.
"""

from __future__ import annotations

import numpy as np

from .graph import LayeredGraph


def proportional_flow(graph: LayeredGraph) -> tuple[np.ndarray, float, np.ndarray]:
    """Route the output demand of ``graph`` backwards in proportion to capacity.

    Args:
        graph: a pruned layered graph (:func:`gaflow.flow.graph.build_graph`).

    Returns:
        ``(attributions (t,), value F, layer_flows (L, t, t))`` in the capacities' units (the
        graph's normalisation ``scale`` undone).
    """
    caps = np.where(graph.live, graph.caps, 0.0)
    n_layers, t = caps.shape[0], caps.shape[1]
    flows = np.zeros_like(caps)
    if graph.empty:
        return np.zeros(t), 0.0, flows
    rows = caps.sum(axis=-1)  # (L, t): in-capacity of each node (l+1, i)
    x = np.where(graph.sink, rows[-1], 0.0)
    x = x / x.sum()
    for layer in range(n_layers - 1, -1, -1):
        share = np.divide(x, rows[layer], out=np.zeros(t), where=rows[layer] > 0)
        flows[layer] = caps[layer] * share[:, None]
        x = flows[layer].sum(axis=0)
    x = np.where(graph.source, x, 0.0)
    ratio = np.divide(flows, caps, out=np.zeros_like(flows), where=caps > 0)
    value = 1.0 / ratio.max()
    scale = graph.scale * value
    return x * scale, float(x.sum() * scale), flows * scale
