"""One maximum flow of a layered graph, and the residual arcs the optimal face is read from.

:func:`max_flow_arcs` computes an integer maximum flow on capacities scaled to 30-bit integers
and rounded down, so that the integer flow, divided by the scale, is a feasible flow of the real
graph. Two engines compute the same integer problem (:func:`engine`): OR-tools' push-relabel
(``ortools.graph.python.max_flow``, the ``gaflow[fast]`` extra; 3-6x faster on dense layered
graphs, benchmarks/results/solver.md) where it is installed, else SciPy's Dinic
(:func:`scipy.sparse.csgraph.maximum_flow`). Their flows may differ (maximum flows are not
unique); the optimal face read from either is the same, and so is its analytic centre
(the centring starts from the flow, so its step count, and rarely its success, differ).
Rounding leaves it short by at most one unit per arc of the minimum cut; a second, *refining*
round (:func:`refine`) computes a maximum flow of the real residual graph of the first one,
scaled by the first round's shortfall bound (30 more bits), which brings the flow to within
about ``1e-12`` of a maximum flow in the solver's units.

What comes back is not the flow but its residual arcs (an edge ``a -> b`` has the arc ``a -> b``
where its flow is below capacity, ``b -> a`` where it is above 0; in integer units, exactly)
and the point: :func:`gaflow.solvers.face.certify` closes them under strongly connected
components and certifies the classification, and :func:`gaflow.solvers.face.centre` computes
its analytic centre. Anything the rounding gets wrong shows there (no certificate, or a centring
that does not conserve), never in an answer.

Node numbers in the network: token ``(k, j)`` is ``k t + j``, then (SciPy's int32 network
only) the auxiliary nodes that split an arc above the 32-bit limit into parallel paths, then
``s`` and ``z``. Layer edge ``(k, i, j)`` is ``(k, j) -> (k+1, i)`` as everywhere in the package.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from ..errors import InputError
from ..flow.graph import LayeredGraph

INT_MAX = 2**31 - 1
BITS = 30  # the largest layer-edge capacity becomes 2^BITS integer units
ENGINES = ("ortools", "scipy")
ENV_VAR = "GAFLOW_MAXFLOW"


def engine(name: str | None = None) -> str:
    """The max-flow engine: ``name``, else the environment variable ``GAFLOW_MAXFLOW``, else
    ``"auto"``: ``"ortools"`` where OR-tools is installed, else ``"scipy"``. Asking for
    ``"ortools"`` without it installed is an error, as is an unknown name."""
    chosen = name or os.environ.get(ENV_VAR) or "auto"
    if chosen == "auto":
        return "ortools" if _has_ortools() else "scipy"
    if chosen not in ENGINES:
        raise InputError(f"unknown max-flow engine {chosen!r} (from {ENV_VAR} or how=): "
                         f"choose one of {', '.join(ENGINES)} or auto")
    if chosen == "ortools" and not _has_ortools():
        raise InputError("the max-flow engine 'ortools' needs OR-tools: pip install "
                         "'gaflow[fast]' (or set GAFLOW_MAXFLOW=scipy)")
    return chosen


@functools.cache
def _has_ortools() -> bool:
    """OR-tools' max flow imports (an installation that fails to import, in any way: a missing
    module, a broken shared library, a protobuf mismatch, counts as none)."""
    try:
        importlib.import_module("ortools.graph.python.max_flow")
    except Exception:  # noqa: BLE001 - whatever a broken install raises, SciPy takes over
        return False
    return True


@dataclass
class Arcs:
    """A flow and the residual arcs of its classification.

    Attributes:
        layers: (L, t, t) flow on the live layer edges (normalised units), feasible.
        source, sink: (t,) flows on the source and sink edges.
        fwd: (L, t, t) bool, the arc ``tail -> head`` exists (flow below capacity).
        back: (L, t, t) bool, the arc ``head -> tail`` exists (flow above 0).
        src_back, sink_back: (t,) bool, backward arcs of the source and sink edges.
        value: the flow value.
        resolution: one integer unit of the last round, in normalised units.
        rounds: integer max-flow rounds run (1 or 2).
        shortfall: first round: a bound on what the flow misses of the maximum (0 after 2).
    """

    layers: np.ndarray
    source: np.ndarray
    sink: np.ndarray
    fwd: np.ndarray
    back: np.ndarray
    src_back: np.ndarray
    sink_back: np.ndarray
    value: float
    resolution: float
    rounds: int
    shortfall: float = 0.0  # round 1: bound on what the flow misses of a maximum flow


def _network(fwd: np.ndarray, back: np.ndarray | None, s_fwd: np.ndarray, s_back: np.ndarray,
             z_fwd: np.ndarray, z_back: np.ndarray):
    """The residual network as a CSR matrix of int32 capacities, and ``s``, ``z``.

    ``fwd`` (L, t, t) int64: capacity of ``(k, j) -> (k+1, i)`` at ``[k, i, j]``; ``back`` the
    same shape or ``None``: capacity of ``(k+1, i) -> (k, j)``; ``s_fwd``/``s_back`` (t,): arcs
    ``s -> (0, j)`` and back; ``z_fwd``/``z_back``: ``(L, i) -> z`` and back. An ``s``- or
    ``z``-arc above ``INT_MAX`` is split into parallel two-arc paths through auxiliary nodes
    (layer arcs must be at most ``INT_MAX``).
    """
    n_layers, t, _ = fwd.shape
    n_tok = (n_layers + 1) * t
    rs = np.maximum(-(-s_fwd // INT_MAX), 0)  # parallel paths per source arc
    rz = np.maximum(-(-z_fwd // INT_MAX), 0)
    n_aux_s, n_aux_z = int(rs.sum()), int(rz.sum())
    s = n_tok + n_aux_s + n_aux_z
    z = s + 1
    n = z + 1
    # layer arcs with their zeros (dense patterns: no search for the nonzeros, which cost
    # more than the max flow's setup; SciPy treats a zero capacity as no arc)
    ar = np.arange(t)
    tails = (np.arange(n_layers)[:, None] * t + ar[None, :]).repeat(t, axis=1)  # [k, (j, i)]
    heads = np.broadcast_to(((np.arange(n_layers) + 1)[:, None] * t)[:, :, None]
                            + ar[None, None, :], (n_layers, t, t)).reshape(n_layers, t * t)
    rows = [tails.ravel()]
    cols = [heads.ravel()]
    vals = [fwd.transpose(0, 2, 1).ravel()]  # [k, j, i]: row (k, j), column (k+1, i)
    if back is not None:
        rows.append(heads.ravel())
        cols.append(tails.ravel())
        vals.append(back.transpose(0, 2, 1).ravel())
    # source: s -> aux -> (0, j) where split, else s -> (0, j); (0, j) -> s backward
    js = np.flatnonzero(rs).repeat(rs[rs > 0])
    aux = n_tok + np.arange(js.size)
    caps_s = _split(s_fwd, rs)
    big = rs[js] > 1
    direct = js[~big]
    rows += [np.full(direct.size, s), np.full(int(big.sum()), s), aux[big]]
    cols += [direct, aux[big], js[big]]
    vals += [caps_s[~big], caps_s[big], caps_s[big]]
    jb = np.flatnonzero(s_back > 0)
    rows.append(jb)
    cols.append(np.full(jb.size, s))
    vals.append(s_back[jb])
    # sink: (L, i) -> aux -> z where split, else (L, i) -> z; z -> (L, i) backward
    iz = np.flatnonzero(rz).repeat(rz[rz > 0])
    auxz = n_tok + n_aux_s + np.arange(iz.size)
    caps_z = _split(z_fwd, rz)
    bigz = rz[iz] > 1
    last = n_layers * t
    rows += [last + iz[~bigz], last + iz[bigz], auxz[bigz]]
    cols += [np.full(int((~bigz).sum()), z), auxz[bigz], np.full(int(bigz.sum()), z)]
    vals += [caps_z[~bigz], caps_z[bigz], caps_z[bigz]]
    ib = np.flatnonzero(z_back > 0)
    rows.append(np.full(ib.size, z))
    cols.append(last + ib)
    vals.append(z_back[ib])
    net = csr_matrix((np.concatenate(vals).astype(np.int32),
                      (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return net, s, z


def _flows(fwd: np.ndarray, back: np.ndarray | None, s_fwd: np.ndarray, s_back: np.ndarray,
           z_fwd: np.ndarray, z_back: np.ndarray, how: str):
    """An integer maximum flow of the network of :func:`_network` (same arguments) by engine
    ``how``: net flows ``(L, t, t)`` of the layer edges (``[k, i, j]`` on ``(k, j) -> (k+1, i)``,
    forward minus backward), ``(t,)`` of the source and of the sink edges."""
    n_layers, t, _ = fwd.shape
    if how == "scipy":
        net, s, z = _network(fwd, back, s_fwd, s_back, z_fwd, z_back)
        res = maximum_flow(net, s, z, method="dinic")
        return _net_flows(res.flow, n_layers, t, s, z)
    from ortools.graph.python import max_flow as ortools_max_flow

    n_tok = (n_layers + 1) * t
    s, z = n_tok, n_tok + 1
    ar = np.arange(t)
    tails = np.broadcast_to(np.arange(n_layers)[:, None, None] * t + ar[None, None, :],
                            fwd.shape).ravel()
    heads = np.broadcast_to((np.arange(n_layers) + 1)[:, None, None] * t + ar[None, :, None],
                            fwd.shape).ravel()
    last = n_layers * t + ar
    parts_t = [tails, np.full(t, s), ar, last, np.full(t, z)]
    parts_h = [heads, ar, np.full(t, s), np.full(t, z), last]
    parts_c = [fwd.ravel(), s_fwd, s_back, z_fwd, z_back]
    if back is not None:
        parts_t.append(heads)
        parts_h.append(tails)
        parts_c.append(back.ravel())
    solver = ortools_max_flow.SimpleMaxFlow()
    arcs = solver.add_arcs_with_capacity(np.concatenate(parts_t), np.concatenate(parts_h),
                                         np.concatenate(parts_c).astype(np.int64))
    status = solver.solve(s, z)
    if status != solver.OPTIMAL:
        raise ValueError(f"OR-tools max flow ended with status {status}")
    flow = solver.flows(arcs)
    m = fwd.size
    lay = flow[:m].reshape(fwd.shape)
    if back is not None:
        lay = lay - flow[m + 4 * t:].reshape(fwd.shape)
    src = flow[m:m + t] - flow[m + t:m + 2 * t]
    snk = flow[m + 2 * t:m + 3 * t] - flow[m + 3 * t:m + 4 * t]
    return lay, src, snk


def _split(cap: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """``cap[j]`` cut into ``parts[j]`` pieces of at most ``INT_MAX``, in ``repeat`` order."""
    out = []
    for c, p in zip(cap[parts > 0], parts[parts > 0], strict=True):
        if p == 1:
            out.append(np.array([c]))
        else:
            piece = np.full(p, INT_MAX, dtype=np.int64)
            piece[-1] = c - INT_MAX * (p - 1)
            out.append(piece)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _net_flows(flow, n_layers: int, t: int, s: int, z: int):
    """Net integer flows of the layer, source and sink edges from SciPy's flow matrix
    (antisymmetric; auxiliary nodes sit on the source and sink paths only)."""
    fl = flow.tocsr()
    n_tok = (n_layers + 1) * t
    ptr, col, val = fl.indptr, fl.indices, fl.data
    lay = np.zeros((n_layers, t, t), dtype=np.int64)
    for k in range(n_layers):
        # rows of layer k: columns sorted, the next layer's t of them in one run; with every
        # layer arc in the network (zeros kept) the rows line up and one slice reads them
        lo, hi = int(ptr[k * t]), int(ptr[(k + 1) * t])
        counts = np.diff(ptr[k * t:(k + 1) * t + 1])
        c = col[lo:hi]
        first = (k + 1) * t
        if (counts == counts[0]).all():
            block = c.reshape(t, counts[0])
            hit = np.flatnonzero(block[0] == first)
            if hit.size and hit[0] + t <= counts[0]:
                at = int(hit[0])
                if (block[:, at:at + t] == np.arange(first, first + t)).all():
                    lay[k] = val[lo:hi].reshape(t, counts[0])[:, at:at + t].T
                    continue
        row = np.repeat(np.arange(t), counts)
        sel = (c >= first) & (c < first + t)
        lay[k, c[sel] - first, row[sel]] = val[lo:hi][sel]
    # source and sink edges: what each token node of layers 0 and L sends off the token nodes
    def off(first: int) -> np.ndarray:
        lo, hi = int(ptr[first]), int(ptr[first + t])
        r = np.repeat(np.arange(t), np.diff(ptr[first: first + t + 1]))
        m = col[lo:hi] >= n_tok
        out = np.zeros(t, dtype=np.int64)
        np.add.at(out, r[m], val[lo:hi][m])
        return out

    return lay, -off(0), off(n_layers * t)


def max_flow_arcs(graph: LayeredGraph, bound: float, how: str | None = None) -> Arcs:
    """First round: a maximum flow of the capacities ``min(u, bound)`` scaled so that the
    largest is ``2^BITS`` and rounded down (``bound`` >= the maximum flow, e.g.
    :func:`gaflow.solvers.api.flow_bound`; capping at it changes no maximum flow).

    Arcs: forward where the integer flow is below the integer capacity, or where that
    capacity rounded to 0 (the real one is not); backward where the flow is positive. Source
    and sink edges (uncapacitated) get the capacity of what their node can pass on. ``how``:
    the engine (:func:`engine`).
    """
    caps = np.minimum(graph.caps, bound)
    n_layers, t, _ = caps.shape
    scale = 2.0**BITS / float(caps.max())
    cap_i = np.floor(caps * scale).astype(np.int64)
    cap_i[~graph.live] = 0
    s_need = np.where(graph.source, cap_i[0].sum(axis=0), 0)  # what (0, j) can pass on
    z_need = np.where(graph.sink, cap_i[-1].sum(axis=1), 0)  # what reaches (L, i)
    zeros = np.zeros(t, dtype=np.int64)
    lay, src, snk = _flows(cap_i, None, s_need, zeros, z_need, zeros, engine(how))
    live = graph.live
    # saturated in integers: no forward arc, unless the capacity was capped at ``bound`` (the
    # real edge then has room above the flow)
    short = live & (lay >= cap_i) & (cap_i > 0) & ~(graph.caps > bound)
    layers = np.where(live, lay / scale, 0.0)
    shortfall = float(np.sum(caps - layers, where=short)) + float(
        np.sum(graph.caps, where=live & (cap_i == 0)))
    return Arcs(layers=layers, source=src / scale, sink=snk / scale,
                fwd=live & ~short, back=live & (lay > 0), src_back=graph.source & (src > 0),
                sink_back=graph.sink & (snk > 0), value=float(src.sum()) / scale,
                resolution=1.0 / scale, rounds=1, shortfall=shortfall)


def refine(graph: LayeredGraph, arcs: Arcs, how: str | None = None) -> Arcs:
    """Second round: a maximum flow of the real residual graph of ``arcs``' flow, added to it.

    The first round's flow misses at most ``arcs.shortfall``: what its saturated (rounded-down)
    edges and its edges rounded to 0 can still take (every arc missing from its minimum cut is
    one of those). Every residual arc is capped at that bound, which becomes ``2^BITS`` units.
    Arcs of the sum: where the second round's integer residual is positive; a residual below
    one of its units (``shortfall / 2^BITS``, about 1e-12 on real graphs) counts as none, and
    the centring puts such an edge on its bound.
    """
    live, caps = graph.live, graph.caps
    delta = arcs.shortfall
    if not delta > 0:
        return arcs
    x = np.where(live, arcs.layers, 0.0)
    n_layers, t, _ = caps.shape
    scale = 2.0**BITS / delta
    fwd_i = np.where(live, np.floor(np.minimum(caps - x, delta) * scale), 0).astype(np.int64)
    back_i = np.where(live, np.floor(np.minimum(x, delta) * scale), 0).astype(np.int64)
    full = np.full(t, 2**BITS, dtype=np.int64)
    s_fwd = np.where(graph.source, full, 0)
    z_fwd = np.where(graph.sink, full, 0)
    s_back = np.where(graph.source, np.floor(np.minimum(arcs.source, delta) * scale), 0)
    z_back = np.where(graph.sink, np.floor(np.minimum(arcs.sink, delta) * scale), 0)
    s_back, z_back = s_back.astype(np.int64), z_back.astype(np.int64)
    lay, src, snk = _flows(fwd_i, back_i, s_fwd, s_back, z_fwd, z_back, engine(how))
    layers = np.where(live, np.clip(x + lay / scale, 0.0, caps), 0.0)
    source = np.where(graph.source, arcs.source + src / scale, 0.0)
    sink = np.where(graph.sink, arcs.sink + snk / scale, 0.0)
    return Arcs(layers=layers, source=source, sink=sink,
                fwd=live & ((fwd_i - lay > 0) | (caps - x > delta)),  # capped: room left
                back=live & (back_i + lay > 0),
                src_back=graph.source & (s_back + src > 0),
                sink_back=graph.sink & (z_back + snk > 0),
                value=float(source.sum()), resolution=1.0 / scale, rounds=2, shortfall=0.0)
