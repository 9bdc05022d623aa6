"""Independent references for tests and benchmarks (not used on the hot path).

* :func:`cvxpy_barrier` solves the same barrier problem as :mod:`.newton` with CVXPY on an explicit
  edge list (its own pruning, its own incidence matrix).
* :func:`exact_max_flow_value` is the exact maximum-flow value by linear programming (HiGHS).
* :func:`augmenting_max_flow_value` is the same value by augmenting paths, right at any scale.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linprog


def edge_list(capacities: np.ndarray, outputs: Sequence[int] | None = None):
    """Explicit graph: node names, edges ``(tail, head, cap)`` (cap ``None``: uncapacitated).

    Edges of capacity 0 are dropped and edges on no s -> z path are pruned by plain graph search.
    """
    n_layers, t, _ = capacities.shape
    outs = range(t) if outputs is None else sorted({int(o) % t for o in outputs})
    edges = [("s", (0, j), None) for j in range(t)]
    for layer in range(n_layers):
        for i in range(t):
            for j in range(t):
                if capacities[layer, i, j] > 0:
                    edges.append(((layer, j), (layer + 1, i), float(capacities[layer, i, j])))
    edges += [((n_layers, i), "z", None) for i in outs]

    def reach(start, forward):
        seen, todo = {start}, [start]
        while todo:
            v = todo.pop()
            for a, b, _ in edges:
                nxt = b if forward and a == v else a if not forward and b == v else None
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    fwd, bwd = reach("s", True), reach("z", False)
    return [(a, b, c) for a, b, c in edges if a in fwd and b in bwd and a in bwd and b in fwd]


def _incidence(edges):
    nodes = sorted({v for a, b, _ in edges for v in (a, b)} - {"s"}, key=str)
    index = {v: k for k, v in enumerate(nodes)}
    inc = np.zeros((len(nodes), len(edges) + 1))
    for e, (a, b, _) in enumerate(edges):
        if a != "s":
            inc[index[a], e] += 1.0
        inc[index[b], e] -= 1.0
    inc[index["z"], len(edges)] = 1.0  # return edge z -> s
    return inc


def cvxpy_barrier(
    capacities: np.ndarray, outputs: Sequence[int] | None, mu: float
) -> tuple[np.ndarray, float]:
    """Attributions (t,) and flow value of the barrier problem with explicit ``mu`` (CVXPY).

    Capacities are normalised by their maximum (mu is relative to it), as in ``solve_flow``.
    """
    import cvxpy as cp

    caps = np.asarray(capacities, dtype=float)
    scale = caps.max()
    edges = edge_list(caps / scale, outputs)
    t = caps.shape[1]
    if not edges:
        return np.zeros(t), 0.0
    inc = _incidence(edges)
    f = cp.Variable(len(edges) + 1)
    capped = [e for e, (_, _, c) in enumerate(edges) if c is not None]
    u = np.array([edges[e][2] for e in capped])
    objective = -f[-1] - mu * cp.sum(cp.log(f)) - mu * cp.sum(cp.log(u - f[capped]))
    problem = cp.Problem(cp.Minimize(objective), [inc @ f == 0])
    problem.solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500
    )
    phi = np.zeros(t)
    for e, (a, b, _) in enumerate(edges):
        if a == "s":
            phi[b[1]] = f.value[e]
    return phi * scale, float(f.value[-1]) * scale


def exact_max_flow_value(capacities: np.ndarray, outputs: Sequence[int] | None = None) -> float:
    """Exact maximum flow value of the layered graph by linear programming (HiGHS)."""
    caps = np.asarray(capacities, dtype=float)
    edges = edge_list(caps, outputs)
    if not edges:
        return 0.0
    inc = _incidence(edges)
    n = len(edges) + 1
    c = np.zeros(n)
    c[-1] = -1.0
    bounds = [(0, cap) for _, _, cap in edges] + [(0, None)]
    res = linprog(c, A_eq=inc, b_eq=np.zeros(inc.shape[0]), bounds=bounds, method="highs")
    return float(-res.fun)


def augmenting_max_flow_value(
    capacities: np.ndarray, outputs: Sequence[int] | None = None
) -> float:
    """Exact maximum flow value by shortest augmenting paths (Edmonds–Karp) in float64.

    Unlike the LP of :func:`exact_max_flow_value`, whose absolute tolerances treat capacities
    below about 1e-9 as zero, every operation here is a comparison, a ``min`` or one addition
    per edge and path, so the value is right to rounding whatever the capacities' scale (for
    the small graphs of the tests: the number of augmentations grows with the edge count).
    """
    caps = np.asarray(capacities, dtype=float)
    edges = edge_list(caps, outputs)
    if not edges:
        return 0.0
    uncapped = math.inf
    residual: dict = {}
    for a, b, c in edges:
        cap = uncapped if c is None else c
        residual.setdefault(a, {})[b] = residual.get(a, {}).get(b, 0.0) + cap
        residual.setdefault(b, {}).setdefault(a, 0.0)
    value = 0.0
    while True:
        parent = {"s": None}
        queue = deque(["s"])
        while queue and "z" not in parent:
            v = queue.popleft()
            for w, r in residual[v].items():
                if r > 0 and w not in parent:
                    parent[w] = v
                    queue.append(w)
        if "z" not in parent:
            return value
        path, v = [], "z"
        while parent[v] is not None:
            path.append((parent[v], v))
            v = parent[v]
        push = min(residual[a][b] for a, b in path)
        if not math.isfinite(push):  # an uncapacitated path: cannot happen in a layered graph
            raise ValueError("unbounded flow")
        for a, b in path:
            residual[a][b] -= push
            residual[b][a] += push
        value += push
