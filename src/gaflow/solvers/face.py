"""The central flow as the analytic centre of the optimal face (one centring, no ``mu`` path).

For a linear program the central path ends at the analytic centre of the optimal face (GAF
Eq. 5 with ``mu -> 0``; e.g. Wright, *Primal-Dual Interior-Point Methods*, Thm. 5.2 and
Sec. 7.2 on finite termination by identifying that face): the point of the face that maximises
the barrier terms of the bounds not tight on all of it. For maximum flow the face is
combinatorial. Given a maximum flow ``f``, let ``R_f`` be its residual graph (arc ``a -> b``
where an edge ``a -> b`` has ``f < u``, arc ``b -> a`` where it has ``f > 0``; the return edge
``z -> s`` left out). Every other maximum flow is ``f`` plus a circulation on cycles of
``R_f``, so an edge at a bound whose ends lie in different strongly connected components
(SCCs) of ``R_f`` keeps that flow in every maximum flow. The central flow then is

    maximise  sum_{free e} [log f_e + log(u_e - f_e)] + sum_{free source, sink e} log f_e
    subject to  B f = 0,  fixed edges at their bound,

one self-concordant centring problem on the same block-tridiagonal node system as the barrier
Newton step (:func:`gaflow.solvers.newton.factor`), with the fixed edges' conductances 0, ``s``
and ``z`` both grounded (the return edge carries whatever the cut lets through: no barrier),
and one node of every other SCC grounded by an extra conductance (such a component's rows sum
to zero, so its potentials are fixed only up to a constant; pinning one node changes nothing
else). Free edges whose flow is nevertheless the same on the whole face (a sink edge, say)
only add a constant to the objective.

The face is *guessed*, from a point of the central path (:func:`classify`, used by
:class:`Finisher` at the end of the path's stages) or from a primal-dual iterate
(:mod:`gaflow.solvers.primal_dual`), and then *certified*: (1) :func:`certify`: in the
residual graph of the classification (free edges both arcs, fixed edges the one arc their
bound leaves) ``z`` is not reachable from ``s``, and every fixed edge joins two different SCCs;
(2) :func:`centre` reaches a point with the fixed edges exactly at their bounds, the free ones
strictly inside, conservation to ``FEASIBLE * F`` and Newton decrement below its target. Such
a point is a maximum flow (1) whose residual graph is the classification's, so the fixed edges
are fixed on the whole optimal face, and the free ones are not at a bound on all of it (2):
the classification is the optimal face and the point its analytic centre. Anything else is a
failed try, and the caller goes on (never a result without both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from ..flow.graph import LayeredGraph
from . import maxflow
from .blocks import Block, add_by_layer, layer_blocks
from .newton import FlowState, _balance, _Factor, _gemv, divergence, factor

FEASIBLE = 1e-10  # imbalance (relative to F) below which a point counts as conserving
STALL = 0.5  # classify: a slack that kept this fraction of its size at the previous mu has room
STUCK = 0.5  # centre gives up where lambda^2 is still above this from the third step on
MAX_STEPS = 8  # Newton steps allowed to one centring try
BOUNDARY = 0.9  # fraction of the largest step inside the bounds (0.995 took 1-3 more steps)
REFINED = 0.01  # step: refinement stops where x + dx conserves to REFINED * FEASIBLE * F
ARMIJO = 0.01
_TINY = np.finfo(np.float64).tiny  # the smallest normal float64


@dataclass
class Face:
    """A classification of the edges: free (inside one SCC) or fixed at a bound.

    Attributes:
        free: (L, t, t) bool, live layer edges that vary over the optimal face.
        full: (L, t, t) bool, live layer edges fixed at their capacity (the rest of the fixed
            ones are fixed at 0).
        source: (t,) bool, free source edges (fixed ones carry 0).
        sink: (t,) bool, free sink edges (fixed ones carry 0).
        nodes: (L+1, t) bool, token nodes with at least one free edge.
        ground: (L+1, t) bool, one node of every SCC that is neither ``s``'s nor ``z``'s.
        n_free: number of free layer edges.
    """

    free: np.ndarray
    full: np.ndarray
    source: np.ndarray
    sink: np.ndarray
    nodes: np.ndarray
    ground: np.ndarray
    n_free: int

    @cached_property
    def fixed(self) -> np.ndarray:
        """(L, t, t) bool: ``~free`` (the centring's elementwise work masks with it in place)."""
        return ~self.free


@dataclass
class _Edges:
    """The live layer edges of a graph as node numbers: token node ``(k, j)`` is ``k t + j``,
    then ``s`` and ``z``; layer edge ``(k, i, j)`` goes ``(k, j) -> (k+1, i)``."""

    tail: np.ndarray
    head: np.ndarray
    src: np.ndarray  # token numbers of the live source edges' heads
    snk: np.ndarray  # ... and of the live sink edges' tails (layer L)
    s: int
    z: int
    n: int

    @classmethod
    def of(cls, graph: LayeredGraph) -> _Edges:
        n_layers, t, _ = graph.caps.shape
        k, i, j = np.nonzero(graph.live)
        s = (n_layers + 1) * t
        return cls(tail=k * t + j, head=(k + 1) * t + i, src=np.flatnonzero(graph.source),
                   snk=n_layers * t + np.flatnonzero(graph.sink), s=s, z=s + 1, n=s + 2)


def _arcs(edges: _Edges, fwd: np.ndarray, back: np.ndarray, src_back: np.ndarray,
          sink_back: np.ndarray) -> csr_matrix:
    """The residual graph as a sparse adjacency. ``fwd``/``back`` (over the live layer edges,
    in ``_Edges`` order) say which arcs of each edge exist; ``src_back``/``sink_back`` the
    backward arcs of the source and sink edges (their forward arcs always exist)."""
    e = edges
    sb = e.src[src_back]
    zb = e.snk[sink_back]
    rows = np.concatenate([e.tail[fwd], e.head[back], np.full(e.src.size, e.s), sb, e.snk,
                           np.full(zb.size, e.z)])
    cols = np.concatenate([e.head[fwd], e.tail[back], e.src, np.full(sb.size, e.s),
                           np.full(e.snk.size, e.z), zb])
    return csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(e.n, e.n))


def _scc(graph: LayeredGraph, edges: _Edges, fwd, back, src_back, sink_back):
    """SCC labels of the residual graph (token nodes as (L+1, t), then those of ``s``, ``z``)
    and whether ``z`` is reachable from ``s``."""
    adj = _arcs(edges, fwd, back, src_back, sink_back)
    n_layers, t, _ = graph.caps.shape
    reach = breadth_first_order(adj, edges.s, directed=True, return_predecessors=False)
    _, label = connected_components(adj, directed=True, connection="strong")
    node = label[: (n_layers + 1) * t].reshape(n_layers + 1, t)
    return node, int(label[edges.s]), int(label[edges.z]), bool(np.isin(edges.z, reach))


def classify(graph: LayeredGraph, x: FlowState, room: float, prev: FlowState | None = None,
             rounds: int = 4) -> Face | None:
    """The face guessed from a near-optimal interior flow ``x``, certified combinatorially;
    ``None`` when the certificate fails.

    Guess: arc ``a -> b`` of a layer edge where ``u - f > room``, ``b -> a`` where
    ``f > room``, both where ``u <= 2 room`` (a fixed one of those is put at the nearer bound);
    source and sink edges: backward arc where ``f > room``; ``room`` is an
    absolute flow (the caller takes a multiple of ``mu``: on the central path an edge fixed at
    a bound has slack about ``mu / z_e``, ``z_e`` its reduced cost). Edges inside one SCC of
    this graph are free, the others fixed: at ``u`` where the guess has no forward arc, else
    at 0. The classification's own residual graph (free edges both arcs, fixed ones the arc
    their bound leaves) may join SCCs; then the edges inside the new SCCs are freed and the
    graph rebuilt (at most ``rounds`` times).

    Certificate: in the classification's residual graph ``z`` is not reachable from ``s`` and
    every fixed edge joins two different SCCs. Then any flow with the fixed edges at their
    bounds and the free ones strictly inside is a maximum flow whose residual graph is that
    graph, so the free edges are exactly those that vary over the optimal face.
    """
    live, caps = graph.live, graph.caps
    tiny = caps <= 2.0 * room  # the path cannot tell where these end: no arc, nearer bound
    fwd = caps - x.layers > room
    back = x.layers > room
    src_back = x.source > room
    sink_back = x.sink > room
    if prev is not None:  # a slack that did not shrink with mu is not going to 0
        fwd |= caps - x.layers > STALL * (caps - prev.layers)
        back |= x.layers > STALL * prev.layers
        src_back |= x.source > STALL * prev.source
        sink_back |= x.sink > STALL * prev.sink
    fwd &= live & ~tiny
    back &= live & ~tiny
    src_back &= graph.source
    sink_back &= graph.sink
    full = live & np.where(tiny, x.layers >= 0.5 * caps, ~fwd)
    return certify(graph, fwd, back, src_back, sink_back, full, rounds)


def certify(graph: LayeredGraph, fwd: np.ndarray, back: np.ndarray, src_back: np.ndarray,
            sink_back: np.ndarray, full: np.ndarray, rounds: int = 4,
            closed: bool = False) -> Face | None:
    """The classification closed under SCCs and certified (see :func:`classify`) from guessed
    arcs: ``fwd``/``back`` (L, t, t) of the layer edges, ``src_back``/``sink_back`` (t,) of the
    source and sink edges, ``full`` (L, t, t) the edges to fix at capacity if fixed.

    ``closed``: the arcs are the residual arcs of a flow, every live edge with at least one of
    them, and ``full`` the edges without a forward arc (:func:`_classify_arcs` of a first
    max-flow round). Then an edge between two SCCs has exactly one arc, the one its bound
    leaves, so the classification's residual graph adds arcs inside SCCs only: its SCCs and
    what ``s`` reaches are those of the arcs, and the second SCC computation is skipped."""
    live = graph.live
    e = _Edges.of(graph)
    full = full[live]
    label, ls, lz, reached = _scc(graph, e, fwd[live], back[live], src_back[graph.source],
                                  sink_back[graph.sink])
    for _ in range(rounds):
        flat = label.ravel()
        free = flat[e.tail] == flat[e.head]
        source = graph.source & (label[0] == ls)
        sink = graph.sink & (label[-1] == lz)
        full = full & ~free
        if closed:  # the classification's SCCs are those just read
            if reached:
                return None
            break
        label, ls, lz, reached = _scc(graph, e, free | ~full, free | full,
                                      source[graph.source], sink[graph.sink])
        if reached:
            return None
        flat = label.ravel()
        inner = flat[e.tail] == flat[e.head]
        if not (inner & ~free).any() and not (graph.source & ~source & (label[0] == ls)).any() \
                and not (graph.sink & ~sink & (label[-1] == lz)).any():
            break
    else:
        return None
    node = label
    free_l = np.zeros_like(live)
    free_l[live] = free
    full_l = np.zeros_like(live)
    full_l[live] = full
    free, full = free_l, full_l
    n_layers, t = node.shape[0] - 1, node.shape[1]
    nodes = np.zeros((n_layers + 1, t), dtype=bool)
    nodes[:-1] |= free.any(axis=1)
    nodes[1:] |= free.any(axis=2)
    nodes[0] |= source
    nodes[n_layers] |= sink
    ground = np.zeros_like(nodes)
    flat = np.where(nodes, node, -1).ravel()
    comps, first = np.unique(flat, return_index=True)
    for c, pos in zip(comps, first, strict=True):
        if c >= 0 and c not in (ls, lz):
            ground.flat[pos] = True
    return Face(free=free, full=full, source=source, sink=sink, nodes=nodes, ground=ground,
                n_free=int(free.sum()))


def snap(graph: LayeredGraph, face: Face, x: FlowState) -> FlowState:
    """``x`` with every fixed edge put on its bound (free edges keep their flow)."""
    layers = np.where(face.free, x.layers, np.where(face.full, graph.caps, 0.0))
    source = np.where(face.source, x.source, 0.0)
    sink = np.where(face.sink, x.sink, 0.0)
    return FlowState(layers=layers, source=source, sink=sink, value=float(source.sum()))


@dataclass
class _FirstPass:
    """What :func:`_sweep` returns for the first pass of :func:`step` (``w`` = 0), where
    :func:`_terms` computed it with the terms (block by block, while they are in the cache)."""

    leave: np.ndarray | None = None
    enter: np.ndarray | None = None
    dec: float = 0.0


def _terms(graph: LayeredGraph, face: Face, x: FlowState, blocks: list[Block],
           dx_l: np.ndarray | None = None, first: _FirstPass | None = None):
    """Gradient and conductances ``1 / h`` of ``-sum log f (u - f) - sum log s - sum log z``
    on the free edges (0 conductance elsewhere): ``g = 1/(u - f) - 1/f``,
    ``d = 1 / (1/f^2 + 1/(u - f)^2)``, worked block by block (:mod:`.blocks`). Returns
    ``g_l, d_l`` (L, t, t), the conductance leaving and entering every token node (L, t), and
    the source and sink edges' ``g, d`` (t,). With ``dx_l`` and ``first`` (:func:`step`), also
    the first refinement pass: ``dx_l = -d g`` and ``first`` filled as :func:`_sweep` with
    ``w = None`` would (its sums of ``x + dx``, ``sum d g^2``), saving that pass's reading of
    ``d, g, x`` (3 (L, t, t) arrays) from memory."""
    n_layers, t, _ = graph.caps.shape
    g_l = np.empty_like(x.layers)
    d_l = np.empty_like(x.layers)
    in_d = np.empty((n_layers, t))
    outs = []
    fused = dx_l is not None and first is not None
    if fused:
        enter = np.empty((n_layers, t))
        leaves = []
    for b in blocks:
        fixed = face.fixed[b]
        inv_f = np.where(fixed, 0.5, x.layers[b])
        np.reciprocal(inv_f, out=inv_f)
        inv_s = np.subtract(graph.caps[b], x.layers[b])
        np.copyto(inv_s, 0.5, where=fixed)
        np.reciprocal(inv_s, out=inv_s)
        np.subtract(inv_s, inv_f, out=g_l[b])
        d = d_l[b]
        np.square(inv_f, out=inv_f)
        np.square(inv_s, out=inv_s)
        np.add(inv_f, inv_s, out=d)
        np.reciprocal(d, out=d)
        np.copyto(d, 0.0, where=fixed)
        d.sum(axis=2, out=in_d[b])
        outs.append(d.sum(axis=1))
        if fused:  # as _sweep's first pass: q = g, dx = -d q, x + dx
            dx = np.multiply(d, g_l[b], out=dx_l[b])
            first.dec += float(np.vdot(dx, g_l[b]))
            np.negative(dx, out=dx)
            y = np.add(x.layers[b], dx, out=inv_s)
            y.sum(axis=2, out=enter[b])
            leaves.append(y.sum(axis=1))
    out_d = add_by_layer(outs, blocks, (n_layers, t))
    if fused:
        first.leave, first.enter = add_by_layer(leaves, blocks, (n_layers, t)), enter
    s = np.where(face.source, x.source, 1.0)
    z = np.where(face.sink, x.sink, 1.0)
    g_s = np.where(face.source, -1.0 / s, 0.0)
    d_s = np.where(face.source, s * s, 0.0)
    g_z = np.where(face.sink, -1.0 / z, 0.0)
    d_z = np.where(face.sink, z * z, 0.0)
    return g_l, d_l, out_d, in_d, g_s, d_s, g_z, d_z


def _sweep(x: FlowState, d_l: np.ndarray, q_l: np.ndarray, dx_l: np.ndarray,
           w: np.ndarray | None, blocks: list[Block]):
    """One blocked pass of :func:`step`'s refinement: ``q += w_tail - w_head`` (where ``w`` is
    given), ``dx = -d q``, and the per node sums of ``x + dx`` (leaving, entering: (L, t) each)
    with ``sum d q^2`` over the layer edges."""
    n_layers, t, _ = q_l.shape
    enter = np.empty((n_layers, t))
    leaves = []
    dec = 0.0
    for b in blocks:
        ks, rows = b
        q = q_l[b]
        if w is not None:
            q += w[:-1][ks][:, None, :]
            q -= w[1:][ks][:, rows, None]
        dx = np.multiply(d_l[b], q, out=dx_l[b])
        dec += float(np.vdot(dx, q))
        np.negative(dx, out=dx)
        y = x.layers[b] + dx
        y.sum(axis=2, out=enter[b])
        leaves.append(y.sum(axis=1))
    return add_by_layer(leaves, blocks, (n_layers, t)), enter, dec


@dataclass
class Reuse:
    """The block factor of the centring's last step, and whether the next step may use it as
    the preconditioner of conjugate gradients instead of factoring anew (:func:`step`).
    ``factored`` counts the factorisations made."""

    fac: _Factor | None = None
    allowed: bool = False
    factored: int = 0
    w: np.ndarray | None = None  # the node potentials of the last step (the first solve's start)
    single: int = 0  # of the factorisations, those made in float32 (``step(loose > 0)``)
    single_ok: bool = True  # False once a float32 one failed: the centring's others are float64


def _node_product(d_l: np.ndarray, diag: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(B D B^T + G) w`` over the token nodes ((L+1, t)): ``diag * w`` minus, for every layer,
    ``D_k w_k`` at the receiving and ``D_k^T w_{k+1}`` at the sending nodes (``diag``: the
    degree plus the grounding where a node has a free edge, 1 elsewhere, as in the factor)."""
    y = diag * w
    for k in range(d_l.shape[0]):
        dk_t = d_l[k].T  # Fortran-ordered: BLAS reads it without a copy
        y[k + 1] -= _gemv(dk_t, w[k], trans=True)
        y[k] -= _gemv(dk_t, w[k + 1])
    return y


def _pcg(apply, precond, r: np.ndarray, tol: float, max_iter: int,
         start: np.ndarray | None = None):
    """Conjugate gradients for ``A w = r`` preconditioned by ``precond``, from ``start`` (or 0),
    until ``|r - A w| <= tol`` at every node (``tol`` a scalar or (L+1, t)); returns ``w`` and
    whether it got there within ``max_iter`` products (with none allowed it does not)."""
    if max_iter < 1:
        return np.zeros_like(r), False
    if start is None:
        w, res = np.zeros_like(r), r.copy()
    else:
        w = start.copy()
        res = r - apply(w)
        max_iter -= 1
        if (np.abs(res) <= tol).all():
            return w, True
    z = precond(res)
    p = z.copy()
    rz = float(np.vdot(res, z))
    for _ in range(max_iter):
        ap = apply(p)
        curv = float(np.vdot(p, ap))
        if not curv > 0:
            return w, False
        a = rz / curv
        w += a * p
        res -= a * ap
        if (np.abs(res) <= tol).all():
            return w, True
        z = precond(res)
        rz_next = float(np.vdot(res, z))
        p = z + (rz_next / rz) * p
        rz = rz_next
    return w, False


REUSE_DEC = 0.1  # a step after a full one with lambda^2 below this may reuse the last factor
PCG_ITER = 8  # ... if conjugate gradients preconditioned by it converge in this many products
NODE_RTOL = 1e-13  # ... to this fraction of each node's throughput (and REFINED * FEASIBLE * F)
LOOSE = 0.01  # a damped step of the infeasible phase leaves this fraction of the imbalance
LOOSE_PASSES = 5  # ... within this many refinement passes (else the step is made in float64)


def step(graph: LayeredGraph, face: Face, x: FlowState, passes: int = 3,
         reuse: Reuse | None = None, loose: float = 0.0):
    """Newton step of the centring problem (residual ``B x`` corrected): ``dx = -D (g + B^T
    w)`` with ``(B D B^T) w = B (x - D g)``, ``s`` and ``z`` grounded; returns the step as a
    :class:`FlowState` and ``lambda^2 = sum d q^2``. Up to ``passes - 1`` refinement passes
    as in :func:`gaflow.solvers.newton.newton_step`, stopped once the point ``x + dx`` conserves
    flow to ``REFINED * FEASIBLE * F`` (one solve leaves about 1e-14 F on the benchmark
    graphs; an inexact ``w`` only overstates ``lambda^2`` at a conserving point, as ``w``
    minimises ``sum d (g + B^T w)^2`` there, so the certificate stays conservative). The
    elementwise work runs block by block (:mod:`.blocks`).

    ``reuse``: where ``reuse.allowed`` (the caller's judgement that the conductances moved
    little since ``reuse.fac`` was factored), each solve is conjugate gradients on the node
    system preconditioned by that factor, to the same tolerance, within ``PCG_ITER`` products;
    where they do not get there, the step is made anew with a fresh factor. The factor used is
    left in ``reuse.fac``.

    ``loose > 0`` (a damped step of the infeasible phase, :func:`centre`): the block factor is
    made in float32 (``factor(single=True)``) and the refinement stops once ``x + dx``
    conserves to ``loose``; where it does not get there within ``passes`` (or the float32
    factor fails), the step is made as with ``loose = 0``.
    """
    n_layers, t, _ = graph.caps.shape
    blocks = layer_blocks(n_layers, t)
    dx_l, first = np.empty_like(x.layers), _FirstPass()
    g_l, d_l, out_d, in_d, g_s, d_s, g_z, d_z = _terms(graph, face, x, blocks, dx_l, first)
    deg = np.zeros((n_layers + 1, t))
    deg[:-1] += out_d
    deg[1:] += in_d
    deg[0] += d_s
    deg[-1] += d_z
    ground = np.where(face.ground, np.maximum(deg, 1e-300), 0.0)
    stale = reuse is not None and reuse.allowed and reuse.fac is not None
    if stale:
        fac = reuse.fac
        diag = np.where(face.nodes, deg + ground, 1.0)

        def precond(r):
            return np.where(face.nodes, fac.solve(r, 0.0)[0], 0.0)

        def apply(w):
            return np.where(face.nodes, _node_product(d_l, diag, w), 0.0)
    else:
        try:
            fac = factor(_with_nodes(graph, face), d_l, d_s, d_z, math.inf, out_d,
                         ground=ground, single=loose > 0)
        except np.linalg.LinAlgError:
            if not loose > 0:
                raise
            return _in_float64(graph, face, x, reuse)
        if reuse is not None:
            reuse.fac = fac
            reuse.factored += 1
            reuse.single += loose > 0
    # q_l is corrected on every edge: off the free ones d_l = 0, so those entries are never used
    q_l, q_s, q_z = g_l, g_s.copy(), g_z.copy()
    tol = max(REFINED * FEASIBLE * max(float(x.source.sum()), 1e-300), loose)
    w = total = None
    for k in range(passes + 1):
        if w is not None:
            q_s = q_s + np.where(face.source, -w[0], 0.0)
            q_z = q_z + np.where(face.sink, w[n_layers], 0.0)
        if k == 0 and first.leave is not None:
            leave, enter, dec_l = first.leave, first.enter, first.dec
        else:
            leave, enter, dec_l = _sweep(x, d_l, q_l, dx_l, w, blocks)
        if k == passes and not loose > 0:
            break
        r = _balance(leave, enter, x.source - d_s * q_s, x.sink - d_z * q_z, 0.0)[0]
        r = np.where(face.nodes, r, 0.0)
        if k and np.abs(r).max(initial=0.0) <= tol:
            break
        if k == passes:  # a float32 factor that does not refine to loose
            return _in_float64(graph, face, x, reuse)
        if stale:
            # each node conserves to a fraction of what passes through it, as a factored solve
            # leaves it (a node that passes on 1e-12 F keeps its digits), within half of tol;
            # the first solve starts from the last step's potentials (near the centre they
            # change little from step to step)
            through = np.zeros_like(r)
            through[:-1] += np.abs(leave)
            through[1:] += np.abs(enter)
            node_tol = np.minimum(0.5 * tol, NODE_RTOL * through)
            w, done = _pcg(apply, precond, r, node_tol, PCG_ITER, reuse.w if k == 0 else None)
            if not done:  # the conductances moved too far for the old factor: factor anew
                reuse.allowed = False
                return step(graph, face, x, passes, reuse)
        else:
            w, _ = fac.solve(r, 0.0)
            w = np.where(face.nodes, w, 0.0)
        total = w if k == 0 else total + w
    if reuse is not None:
        reuse.w = total
    dec = dec_l + float(d_s @ (q_s * q_s) + d_z @ (q_z * q_z))
    dx = FlowState(layers=dx_l, source=-d_s * q_s, sink=-d_z * q_z,
                   value=float(-(d_s * q_s).sum()))
    return dx, dec


def _in_float64(graph: LayeredGraph, face: Face, x: FlowState, reuse: Reuse | None):
    """:func:`step` from ``x`` with a float64 factor, where a float32 one failed (not positive
    definite, or its refinement did not converge); the centring makes no more float32 ones."""
    if reuse is not None:
        reuse.single_ok = False
    return step(graph, face, x, reuse=reuse)


def _with_nodes(graph: LayeredGraph, face: Face) -> LayeredGraph:
    from dataclasses import replace

    return replace(graph, nodes=face.nodes)


def _max_step(graph: LayeredGraph, face: Face, x: FlowState, dx: FlowState) -> float:
    """Largest ``alpha`` keeping the free flows strictly inside their bounds: ``1 / max(dx /
    (u - x), -dx / x)`` over the free edges (both ratios are positive only on the side the
    edge moves to), block by block."""
    most = 0.0
    for b in layer_blocks(*graph.caps.shape[:2]):
        free, d = face.free[b], dx.layers[b]
        ratio = np.zeros_like(d)
        np.subtract(graph.caps[b], x.layers[b], out=ratio, where=free)
        np.divide(d, ratio, out=ratio, where=free)
        most = max(most, float(ratio.max(initial=0.0)))
        np.divide(d, x.layers[b], out=ratio, where=free)
        most = max(most, -float(ratio.min(initial=0.0)))
    alpha = 1.0 / most if most > 0 else math.inf
    for v, dv, m in ((x.source, dx.source, face.source), (x.sink, dx.sink, face.sink)):
        neg = m & (dv < 0)
        if neg.any():
            alpha = min(alpha, float((v[neg] / -dv[neg]).min()))
    return alpha


def _objective(graph: LayeredGraph, face: Face, x: FlowState) -> float:
    """The centring objective ``-sum_free log f (u - f) - sum log s - sum log z``; ``inf``
    where a free flow is not strictly inside its bounds. Block by block; ``log f (u - f)`` as
    one log of the product, two logs in a block where the product leaves the normal range
    (both factors far below 1e-150: a subnormal product has lost digits)."""
    s, z = x.source[face.source], x.sink[face.sink]
    if (s.size and s.min() <= 0) or (z.size and z.min() <= 0):
        return math.inf
    logs = 0.0
    for b in layer_blocks(*graph.caps.shape[:2]) if face.n_free else ():
        free, f = face.free[b], x.layers[b]
        slack = np.subtract(graph.caps[b], f)
        if np.min(f, where=free, initial=math.inf) <= 0 \
                or np.min(slack, where=free, initial=math.inf) <= 0:
            return math.inf
        np.multiply(slack, f, out=slack)
        if np.min(slack, where=free, initial=math.inf) >= _TINY:
            logs += float(np.sum(np.log(slack, out=slack, where=free), where=free))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):  # fixed edges may sit at 0
                logs += float(np.sum(np.log(f), where=free)
                              + np.sum(np.log(graph.caps[b] - f), where=free))
    return -float(logs + np.log(s).sum() + np.log(z).sum())


def _move(x: FlowState, dx: FlowState, alpha: float) -> FlowState:
    return FlowState(layers=x.layers + alpha * dx.layers, source=x.source + alpha * dx.source,
                     sink=x.sink + alpha * dx.sink, value=x.value + alpha * dx.value)


def imbalance(graph: LayeredGraph, face: Face, x: FlowState) -> float:
    """``max |B x|`` over the token nodes (``s`` and ``z`` grounded)."""
    r, _ = divergence(x.layers, x.source, x.sink, 0.0)
    return float(np.abs(r).max(initial=0.0))


@dataclass
class Centred:
    """Outcome of :func:`centre`: the point, the Newton steps spent, whether it is certified
    (``ok``) and, if not, why (``message``), the last decrement and the factorisations made."""

    x: FlowState
    steps: int
    ok: bool
    message: str
    decrement: float
    factored: int = 0  # block factorisations made (a step that reused the last one made none)
    single: int = 0  # ... of which in float32 (damped steps of the infeasible phase)


def _newton(graph: LayeredGraph, face: Face, x: FlowState, reuse: Reuse, loose: float):
    """:func:`step` for :func:`centre`: ``(dx, lambda^2, "")``, or ``(None, inf, why)`` where
    the node system is not positive definite or the step is not finite."""
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # a step that rounds a free edge onto its bound makes the next one non-finite:
            # refused here, not warned about
            dx, dec = step(graph, face, x, passes=LOOSE_PASSES if loose > 0 else 3,
                           reuse=reuse, loose=loose)
    except np.linalg.LinAlgError as exc:
        return None, math.inf, f"face centring: {exc}"
    if not math.isfinite(dec):
        return None, math.inf, "face centring: non-finite Newton step"
    return dx, dec, ""


def centre(graph: LayeredGraph, face: Face, x0: FlowState, rtol: float = 1e-6,
           max_steps: int = MAX_STEPS, patience: int | None = None) -> Centred:
    """Analytic centre of ``face`` by infeasible-start damped Newton from ``x0`` (snapped).

    Steps are cut at ``BOUNDARY`` of the largest step inside the bounds; once the point
    conserves flow (imbalance below ``FEASIBLE * F``) and ``lambda^2 > 1/4``, a full step
    that passes Armijo's test is doubled while the objective keeps dropping, and one that
    fails it is backtracked down to the self-concordant length ``1 / (1 + lambda)``. Ends
    certified when the point conserves flow and ``lambda^2 <= (rtol / 100)^2`` (each free flow
    then lies within about ``rtol / 100`` of its slack from the centre), or when
    ``lambda^2 <= 1e-12`` stalls at the rounding floor. Gives up (not ok) after ``max_steps``,
    or when a conserving point still has ``lambda^2 > STUCK`` from the third step on: from a
    point of the path near ``mu -> 0`` a right face is centred quadratically within a few
    steps, while a classification with an edge that can only sit on a bound keeps
    ``lambda^2`` near 1 (the edge's distance to the bound halves at every step). With
    ``patience`` (a start far from the centre, as :func:`from_max_flow`'s), that test waits
    until ``patience`` steps have been taken from conserving points.

    A step after a full step from a conserving point with ``lambda^2 <= REUSE_DEC`` solves with
    the last factor as preconditioner (:class:`Reuse`, :func:`step`); ``Centred.factored``
    counts the factorisations made. A step of the infeasible phase after a damped one (most of
    them: the bounds cut them to 0.04-0.8) is solved with a float32 factor, refined until it
    leaves ``LOOSE`` of the imbalance (``Centred.single`` counts these factors); where that step
    turns out full, it is solved again to the full tolerance before it is taken, so the
    centre and its certificate are those of float64 steps.
    """
    x = snap(graph, face, x0)
    phi_x = _objective(graph, face, x)  # the objective at x, where known (None: not computed)
    if math.isinf(phi_x):
        # a free edge on a bound: the barrier is infinite there (a start from a path point
        # whose flows underflowed)
        return Centred(x, 0, False, "face: the start puts a free edge on a bound", math.inf)
    r, _ = divergence(x.layers, x.source, x.sink, 0.0)
    scale = max(float(x.source.sum()), 1e-300)
    if np.abs(np.where(face.nodes, 0.0, r)).max(initial=0.0) > FEASIBLE * scale:
        return Centred(x, 0, False, "face: a node without free edges is not balanced", math.inf)
    dec_prev = math.inf
    alpha = 0.0
    target = (0.01 * rtol) ** 2
    conserving = 0  # steps taken from conserving points
    reuse = Reuse()
    for k in range(max_steps + 1):
        value = float(x.source.sum())
        off = imbalance(graph, face, x)
        feasible = off <= FEASIBLE * max(value, 1e-300)
        # a step of the infeasible phase after a damped one is likely damped too: its
        # direction need only cancel most of the imbalance (a float32 factor, refined to LOOSE)
        loose = LOOSE * off if not feasible and alpha < 1.0 and reuse.single_ok else 0.0
        dx, dec, failed = _newton(graph, face, x, reuse, loose)
        if failed:
            return Centred(x, k, False, failed, math.inf, reuse.factored, reuse.single)
        if not feasible and alpha == 1.0:
            # a full step cancels the imbalance of every component with a free edge; what is
            # left sits at a pinned node: its component's fixed edges do not balance
            return Centred(x, k, False, "face: a component's fixed edges do not balance",
                           math.inf, reuse.factored, reuse.single)
        if feasible and (dec <= target or (dec <= 1e-12 and dec > 0.1 * dec_prev)):
            x.value = value
            return Centred(x, k, True, "", dec, reuse.factored, reuse.single)
        if k == max_steps:
            break
        if feasible and dec > STUCK and (k >= 2 if patience is None else conserving >= patience):
            # lambda^2 near 1 with full steps: a free edge is being driven to a bound (it is
            # fixed there on every flow of this classification: no strictly feasible point)
            return Centred(x, k, False, f"face centring stuck at lambda^2={dec:.1e}", dec,
                           reuse.factored, reuse.single)
        amax = _max_step(graph, face, x, dx)
        alpha = min(1.0, BOUNDARY * amax)
        if loose > 0 and alpha == 1.0:
            # a full step cancels the imbalance to what the solve leaves: solve it to the full
            # tolerance (conjugate gradients preconditioned by the float32 factor, from the
            # loose potentials; a fresh float64 factor where they do not converge)
            reuse.allowed = True
            dx, dec, failed = _newton(graph, face, x, reuse, 0.0)
            if failed:
                return Centred(x, k, False, failed, math.inf, reuse.factored, reuse.single)
            amax = _max_step(graph, face, x, dx)
            alpha = min(1.0, BOUNDARY * amax)
        moved = None  # (x + alpha dx, its objective) where the line search computed them
        if feasible and dec > 0.25:
            phi0 = _objective(graph, face, x) if phi_x is None else phi_x
            floor = min(alpha, 1.0 / (1.0 + math.sqrt(dec)))
            trial = _move(x, dx, alpha)
            phi = _objective(graph, face, trial)
            moved = trial, phi
            if phi <= phi0 - ARMIJO * alpha * dec:
                # far from the centre the direction is right and its length too short (an
                # edge near a bound moves away from it by doubling): go on while phi drops
                while 2.0 * alpha < BOUNDARY * amax:
                    trial = _move(x, dx, 2.0 * alpha)
                    longer = _objective(graph, face, trial)
                    if not longer < phi:
                        break
                    alpha, phi, moved = 2.0 * alpha, longer, (trial, longer)
            else:
                while alpha > floor:
                    alpha = max(floor, 0.5 * alpha)
                    trial = _move(x, dx, alpha)
                    phi = _objective(graph, face, trial)
                    moved = trial, phi
                    if phi <= phi0 - ARMIJO * alpha * dec:
                        break
        # the objective of the new point is kept for the next line search (one evaluation
        # fewer per step); where none was computed it is computed when needed
        x, phi_x = moved if moved is not None else (_move(x, dx, alpha), None)
        # a full step from a conserving point near the centre changes every conductance by a
        # factor within about (1 +- lambda)^2: the next step preconditions with this factor
        reuse.allowed = feasible and alpha == 1.0 and dec <= REUSE_DEC
        dec_prev = dec
        conserving += feasible
    return Centred(x, max_steps, False,
                   f"face centring not converged in {max_steps} steps (lambda^2={dec:.1e})", dec,
                   reuse.factored, reuse.single)


FINISH_MU = 1e-5  # tries start at the first stage that ends at or below this mu
ROOM = 10.0  # the guess's arcs need a room above ROOM * mu


class Finisher:
    """The ``finish`` hook of :func:`gaflow.solvers.path.solve` for the NumPy kernels: at the
    end of every centring stage with ``mu <= FINISH_MU``, classify (:func:`classify`, with the
    point of the previous ``mu`` for the slack ratios), and if the classification is
    certified, centre on the face (:func:`centre`). Returns ``([flows] or None, steps,
    error estimate)``; ``None`` leaves the path to go on. ``tries[b]`` and ``used[b]`` count
    per graph. The error estimate is ``sqrt(lambda^2) max_j phi_j`` (in the local norm of the
    barrier, each free flow is within ``lambda`` of its slack from the centre)."""

    def __init__(self, graphs: list[LayeredGraph], rtol: float):
        self.graphs = graphs
        self.rtol = rtol
        self.prev: dict[int, tuple[float, FlowState]] = {}
        self.last: dict[int, tuple[float, FlowState]] = {}
        self.tries = [0] * len(graphs)
        self.used = [False] * len(graphs)
        self.decrement = [math.inf] * len(graphs)

    def __call__(self, b: int, xs: list[FlowState], mu: float):
        x = xs[0]
        last = self.last.get(b)
        if last is None or last[0] != mu:  # a new mu (not the tight re-centring of the same)
            if last is not None:
                self.prev[b] = last
            self.last[b] = (mu, x)
        if mu > FINISH_MU:
            return None, 0, math.inf
        prev = self.prev.get(b)
        graph = self.graphs[b]
        self.tries[b] += 1
        fc = classify(graph, x, ROOM * mu, None if prev is None else prev[1])
        if fc is None:
            return None, 0, math.inf
        res = centre(graph, fc, x, rtol=self.rtol)
        if not res.ok or math.sqrt(res.decrement) > self.rtol:
            # a centring that stalled above the accuracy asked for is not an answer: the path
            # goes on (the error estimate below would exceed rtol)
            return None, res.steps, math.inf
        self.used[b] = True
        self.decrement[b] = res.decrement
        return [res.x], res.steps, math.sqrt(res.decrement) * float(np.abs(res.x.source).max())


COMBINATORIAL_STEPS = 50  # centring steps allowed from the max-flow start
PATIENCE = 10  # ... of which this many from conserving points before the stuck test applies
INSIDE = 0.25  # the start puts every free flow within [INSIDE u, (1 - INSIDE) u]


@dataclass
class FaceResult:
    """Outcome of :func:`from_max_flow`: the certified central flow (or ``None``), the
    centring steps spent, why it failed, the last decrement and the max-flow rounds run."""

    x: FlowState | None
    steps: int
    message: str
    decrement: float
    rounds: int = 0


def _classify_arcs(graph: LayeredGraph, arcs: maxflow.Arcs) -> Face | None:
    """:func:`certify` of the residual arcs of a maximum flow (an edge without its forward
    arc is fixed, if at all, at its capacity). The first round's arcs are ``closed`` (every
    live edge has one: a saturated edge carries flow); the refined round's are not (an edge
    below two of its units may have none)."""
    return certify(graph, arcs.fwd, arcs.back, arcs.src_back, arcs.sink_back,
                   graph.live & ~arcs.fwd, closed=arcs.rounds == 1)


def max_flow_start(graph: LayeredGraph, face: Face, arcs: maxflow.Arcs) -> FlowState:
    """Start of the centring: the maximum flow with every free edge's flow clipped into
    ``[INSIDE u, (1 - INSIDE) u]`` (fixed edges on their bounds), source and sink edges carrying
    their node's flow. Strictly inside, not conserving: the centring's infeasible-start Newton
    steps balance it (measured: faster than the max flow itself, which sits on the boundary of
    the face, or than smoothing it layer by layer; benchmarks/results/solver.md)."""
    u = graph.caps
    return clipped_start(graph, face, arcs, INSIDE * u, (1.0 - INSIDE) * u)


def clipped_start(graph: LayeredGraph, face: Face, arcs: maxflow.Arcs, low: np.ndarray,
                  high: np.ndarray) -> FlowState:
    """The maximum flow with every free edge's flow clipped into ``[low, high]`` ((L, t, t)),
    the fixed edges on their bounds, and the source and sink edges carrying what their node
    sends on or receives."""
    lay = np.where(face.free, np.clip(arcs.layers, low, high),
                   np.where(face.full, graph.caps, 0.0))
    src = np.where(face.source, lay[0].sum(axis=0), 0.0)
    snk = np.where(face.sink, lay[-1].sum(axis=1), 0.0)
    return FlowState(layers=lay, source=src, sink=snk, value=float(src.sum()))


def scaled_start(graph: LayeredGraph, face: Face, arcs: maxflow.Arcs) -> FlowState:
    """Second start of the centring, for graphs where :func:`max_flow_start` fails: the free
    flows clipped into ``[INSIDE c, u - INSIDE c]`` with ``c = u min(rho_tail, rho_head)``,
    ``rho`` of a token node the ratio of the smaller to the larger of its total in- and
    out-capacity (1 on layers 0 and L, whose source and sink edges are uncapacitated). An
    edge into (or out of) a node that can pass on only a sliver of what its edges could bring
    (``rho`` = 1e-12, say) then starts at a sliver of its capacity, as every flow of the face
    has it, instead of a quarter of it, which the infeasible-start steps would have to shrink
    by a factor of ``1 / rho`` (one constant factor per step). Not the first start: on real
    AGF graphs it needs more steps (benchmarks/results/solver.md)."""
    u = graph.caps
    n_layers, t, _ = u.shape
    into = np.full((n_layers + 1, t), np.inf)
    out = np.full((n_layers + 1, t), np.inf)
    into[1:] = u.sum(axis=2)
    out[:-1] = u.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.minimum(into, out) / np.maximum(into, out)
    rho = np.where(np.isfinite(rho) & (rho > 0), rho, 1.0)
    c = u * np.minimum(rho[1:][:, :, None], rho[:-1][:, None, :])
    return clipped_start(graph, face, arcs, INSIDE * c, u - INSIDE * c)


def from_max_flow(graph: LayeredGraph, bound: float, rtol: float = 1e-6) -> FaceResult:
    """The central flow from one exact maximum flow: no ``mu`` path.

    1. A maximum flow (:func:`gaflow.solvers.maxflow.max_flow_arcs`, integer push-relabel
       or Dinic on capacities rounded down to 30 bits; ``bound`` >= the max-flow value).
    2. Its residual arcs, closed under SCCs and certified (:func:`certify`): the optimal face.
       Where rounding left an ``s -> z`` path, a second round on the real residual graph
       (:func:`gaflow.solvers.maxflow.refine`) and the same again.
    3. The analytic centre of that face (:func:`centre`, from :func:`max_flow_start`, up to
       ``COMBINATORIAL_STEPS`` steps); a centring that fails after the first round is tried
       once more on the face of the refined flow, and one that fails on the last face read
       (no refinement left) once more from :func:`scaled_start`.

    Returns ``x=None`` (the caller follows the path instead) when no classification is
    certified or no centring converges: never an answer without the certificate of
    :func:`centre`.
    """
    how = maxflow.engine()  # outside the try: a bad GAFLOW_MAXFLOW is the user's error
    with np.errstate(all="ignore"):
        try:
            arcs = maxflow.max_flow_arcs(graph, bound, how)
        except (ValueError, OverflowError) as exc:  # SciPy refused the network
            return FaceResult(None, 0, f"max flow: {exc}", math.inf)
        steps, message = 0, "face: no certified classification"
        while True:
            fc = _classify_arcs(graph, arcs)
            last = arcs.rounds >= 2 or not arcs.shortfall > 0
            starts = (max_flow_start, scaled_start) if last else (max_flow_start,)
            for start in starts if fc is not None else ():
                res = centre(graph, fc, start(graph, fc, arcs), rtol=rtol,
                             max_steps=COMBINATORIAL_STEPS, patience=PATIENCE)
                steps += res.steps
                if res.ok and math.sqrt(res.decrement) <= rtol:
                    return FaceResult(res.x, steps, "", res.decrement, arcs.rounds)
                message = res.message or "face centring above the accuracy asked for"
            if last:
                return FaceResult(None, steps, message, math.inf, arcs.rounds)
            try:
                arcs = maxflow.refine(graph, arcs, how)
            except (ValueError, OverflowError) as exc:
                return FaceResult(None, steps, f"max flow (second round): {exc}", math.inf, 2)
