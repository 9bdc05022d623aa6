"""``solve_flow``: the public entry point of the barrier max-flow solver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..flow.graph import build_graph
from .newton import solve_barrier


@dataclass
class FlowSolution:
    """The unique barrier-regularised (or central) maximum flow of a layered graph.

    Attributes:
        attributions: (t,) flow on ``s -> (0, j)``, in the units of the capacities (GAF Eq. 6).
        value: the flow value ``F`` (= ``attributions.sum()``: efficiency).
        iterations: Newton steps taken.
        mu: the barrier weight of the last centring stage (relative to the largest capacity).
        error_estimate: for ``mu=None``, the estimated ``max|phi - phi*|`` in normalised units.
        converged: whether the accuracy contract was met.
        layer_flows: (L, t, t) flow on ``(l, j) -> (l+1, i)`` when ``keep_flows=True``.
    """

    attributions: np.ndarray
    value: float
    iterations: int
    mu: float
    error_estimate: float
    converged: bool
    layer_flows: np.ndarray | None = None


def solve_flow(
    capacities: np.ndarray,
    outputs: Sequence[int] | None = None,
    mu: float | None = None,
    *,
    tokens: np.ndarray | None = None,
    rtol: float = 1e-6,
    keep_flows: bool = False,
) -> FlowSolution:
    """Barrier-regularised maximum flow through a layered attribution graph.

    Args:
        capacities: (L, t, t) array >= 0; ``capacities[l, i, j]`` is the capacity of the edge
            from token ``j`` at layer ``l`` to token ``i`` at layer ``l+1``.
        outputs: token positions linked to the super-sink (``None``: all tokens).
        mu: barrier weight relative to the largest capacity. ``None`` (default) gives the
            central maximum flow, the ``mu -> 0`` limit, to ``rtol`` in ``max|dphi| / max|phi|``.
        tokens: optional (t,) bool mask of real tokens (padding positions are not nodes).
        rtol: accuracy contract of ``mu=None``.
        keep_flows: also return the (L, t, t) edge flows.

    Returns:
        A :class:`FlowSolution`; tokens with no usable path get exactly 0.
    """
    if mu is not None and not (isinstance(mu, int | float) and np.isfinite(mu) and mu > 0):
        raise InputError(f"mu must be a positive finite number or None, got {mu!r}")
    if not 0 < rtol < 1:
        raise InputError(f"rtol must lie in (0, 1), got {rtol!r}")
    graph = build_graph(capacities, outputs, tokens)
    t = graph.n_tokens
    if graph.empty:
        flows = np.zeros_like(graph.caps) if keep_flows else None
        return FlowSolution(np.zeros(t), 0.0, 0, 0.0 if mu is None else float(mu), 0.0, True, flows)
    x, report = solve_barrier(graph, mu=None if mu is None else float(mu), rtol=rtol)
    scale = graph.scale
    return FlowSolution(
        attributions=np.where(graph.source, x.source, 0.0) * scale,
        value=float(x.value) * scale,
        iterations=report.iterations,
        mu=report.mu,
        error_estimate=report.error_estimate * scale,
        converged=report.converged,
        layer_flows=x.layers * scale if keep_flows else None,
    )
