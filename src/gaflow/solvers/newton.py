"""Structured barrier Newton solver for the layered maximum-flow problem.

Solves, on a :class:`~gaflow.flow.graph.LayeredGraph` with normalised capacities ``u``,

    minimise  -F - mu * sum_e log f_e - mu * sum_{capacitated e} log(u_e - f_e)
    subject to  B f = 0  (flow conservation at every node, return edge z -> s included),

(GAF, Azarkhalili & Libbrecht 2025, Eq. 5; Boyd & Vandenberghe Sec. 10.2 and 11.3). The barrier
covers every edge, the return edge included, so the objective is strictly convex and its minimiser
is unique.

Each Newton step solves the node system ``(B H^-1 B^T) w = r`` (a grounded, weighted graph
Laplacian). With ``s`` grounded and nodes ordered by layer, the super-sink last, the matrix is block
tridiagonal: diagonal blocks are diagonal, the block between layers ``k`` and ``k+1`` is the dense
``t x t`` matrix of edge conductances ``D_k = 1 / h_e``. A block Cholesky (Schur complements layer
by layer) costs ``O(L t^3)`` and never forms an ``(L t)^2`` matrix. The Schur complements are kept
in Laplacian form (off-diagonals plus a separately propagated grounding vector), which avoids the
cancellation that ruins a naive elimination when conductances span many orders of magnitude.

The elementwise work over the ``(L, t, t)`` edge arrays runs in cache-sized blocks
(:mod:`gaflow.solvers.blocks`).

This module holds the NumPy kernels; the path following (centring, step lengths, ``mu``
schedule, extrapolation to ``mu -> 0``, stopping) is :func:`gaflow.solvers.path.solve`, which
runs them through :class:`NumpyKernels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from ..flow.graph import LayeredGraph
from .blocks import Block, add_by_layer, layer_blocks
from .path import BOUNDARY, LINE_ITERS, LINE_START, SingularSystem


@dataclass
class FlowState:
    """Edge flows of the layered graph (normalised units).

    Attributes:
        layers: (L, t, t) flow on ``(l, j) -> (l+1, i)``; 0 on absent edges.
        source: (t,) flow on ``s -> (0, j)``.
        sink: (t,) flow on ``(L, i) -> z``.
        value: flow on the return edge ``z -> s``.
    """

    layers: np.ndarray
    source: np.ndarray
    sink: np.ndarray
    value: float


# --------------------------------------------------------------------------- dense kernels
# Every dense product goes through SciPy's BLAS: mixing NumPy's and SciPy's OpenBLAS thread pools
# in one loop makes their spinning threads fight for the cores (measured: 7x slower on 2 cores).


def _trsm(chol: np.ndarray, b: np.ndarray, trans: bool = False) -> np.ndarray:
    """``R^-1 b`` (or ``R^-T b``) for the lower-triangular ``R = U^T`` of a Cholesky factor
    ``U`` (``chol``, upper, as :func:`_cholesky` returns it); ``b`` a vector or matrix. A
    float32 factor (``factor(single=True)``) solves in float32: a vector comes back as float64,
    a matrix as float32 (the next float32 kernel's input)."""
    if chol.dtype == np.float32:
        if b.ndim == 1:
            return blas.strsv(chol, b.astype(np.float32), lower=0,
                              trans=int(not trans)).astype(np.float64)
        return blas.strsm(1.0, chol, np.asfortranarray(b, dtype=np.float32), lower=0,
                          trans_a=int(not trans))
    if b.ndim == 1:
        return blas.dtrsv(chol, b, lower=0, trans=int(not trans))
    return blas.dtrsm(1.0, chol, b, lower=0, trans_a=int(not trans))


def _gemv(a: np.ndarray, x: np.ndarray, trans: bool = False) -> np.ndarray:
    """``a x`` (or ``a^T x``) as float64; a float32 ``a`` multiplies in float32."""
    if a.dtype == np.float32:
        return blas.sgemv(1.0, a, x.astype(np.float32), trans=int(trans)).astype(np.float64)
    return blas.dgemv(1.0, a, x, trans=int(trans))


def _gram_upper(w: np.ndarray) -> np.ndarray:
    """The upper triangle of ``w^T w`` (SYRK; the strict lower triangle is 0), in ``w``'s
    precision (float32 or float64)."""
    if w.dtype == np.float32:
        return blas.ssyrk(1.0, w, trans=1, lower=0)
    return blas.dsyrk(1.0, w, trans=1, lower=0)


def _cholesky(a: np.ndarray) -> np.ndarray:
    """The upper Cholesky factor ``U`` of ``a = U^T U``, read from ``a``'s upper triangle, in
    place where ``a`` is Fortran-ordered (the strict lower triangle is left as it was: every
    use of ``U`` reads its upper triangle only), in ``a``'s precision. Measured at t = 512, one
    thread: 2.2-2.3 ms against 3.6-7 ms for the lower factor of a C-ordered ``a`` (a copy) with
    the other triangle cleaned."""
    potrf = lapack.spotrf if a.dtype == np.float32 else lapack.dpotrf
    chol, info = potrf(a, lower=0, clean=0, overwrite_a=1)
    if info != 0 or (a.dtype == np.float32 and not np.isfinite(np.diagonal(chol)).all()):
        raise np.linalg.LinAlgError(f"Newton system not positive definite (potrf info={info})")
    return chol


# --------------------------------------------------------------------------- start point


def feasible_start(graph: LayeredGraph) -> FlowState:
    """A strictly feasible circulation: 0 < f < u on every live edge, ``B f = 0``.

    One unit enters each live input node and is routed proportionally to the live capacities of
    its out-edges; the whole flow is then scaled so that no edge uses more than half its capacity.
    """
    caps = graph.caps
    n_layers, t, _ = caps.shape
    node_flow = graph.source.astype(np.float64)
    layers = np.zeros_like(caps)
    worst = 0.0
    for k in range(n_layers):
        out_cap = caps[k].sum(axis=0)  # (t,) capacity leaving each node of layer k
        share = np.divide(
            caps[k], out_cap[None, :], out=np.zeros_like(caps[k]), where=out_cap[None, :] > 0
        )
        layers[k] = share * node_flow[None, :]
        ratio = np.divide(node_flow, out_cap, out=np.zeros(t), where=out_cap > 0)
        worst = max(worst, float(ratio.max()))
        node_flow = layers[k].sum(axis=1)
    factor = 0.5 / worst
    return FlowState(
        layers=layers * factor,
        source=graph.source * factor,
        sink=np.where(graph.sink, node_flow * factor, 0.0),
        value=float(graph.source.sum()) * factor,
    )


def interior_start(graph: LayeredGraph) -> FlowState:
    """Half of every live capacity (capped at 1); each source and sink edge carries its own
    node's flow.

    In the solver's units (:func:`gaflow.solvers.api.flow_units`) no flow exceeds 1, so a
    capacity above 1 is capped for the start: half of a layer scaled up by 1e13 would start its
    edges 1e13 times above any flow they can carry, and the Newton system there is singular.

    Strictly inside every bound, but the inner nodes are generally unbalanced: :func:`restore`
    turns it into a circulation. On real attention graphs it starts far closer to the central
    path than :func:`feasible_start`, whose flow the single tightest edge scales down.
    """
    layers = np.where(graph.live, 0.5 * np.minimum(graph.caps, 1.0), 0.0)
    source = np.where(graph.source, layers[0].sum(axis=0), 0.0)
    sink = np.where(graph.sink, layers[-1].sum(axis=1), 0.0)
    return FlowState(layers=layers, source=source, sink=sink, value=float(source.sum()))


def imbalance(graph: LayeredGraph, x: FlowState) -> float:
    """Largest violation of flow conservation, ``max |B f|`` (``s`` grounded)."""
    r, r_z = divergence(x.layers, np.where(graph.source, x.source, 0.0),
                        np.where(graph.sink, x.sink, 0.0), x.value)
    return max(float(np.abs(r).max(initial=0.0)), abs(r_z))


# --------------------------------------------------------------------------- objective


def objective(
    graph: LayeredGraph, x: FlowState, mu: float, masks: _Masks | None = None,
    along: tuple[_Step, float] | None = None,
) -> float:
    """Barrier objective ``-F - mu * sum log f - mu * sum log(u - f)``; +inf outside the domain.

    ``along=(step, alpha)`` evaluates it at ``x + alpha * step`` without forming that point.
    """
    m = masks if masks is not None else _Masks.of(graph)
    step, alpha = along if along is not None else (None, 0.0)

    def part(b: Block) -> float | None:  # sum of log f (u - f) over a block; None: outside
        f = x.layers[b] if step is None else x.layers[b] + alpha * step.layers[b]
        f = np.where(m.live[b], f, 0.5)  # dead: f = 0.5, u = 1, log f + log(u - f) = 2 log 0.5
        slack = m.u[b] - f
        if f.min() <= 0 or slack.min() <= 0:
            return None
        return float(np.log(f * slack).sum())

    parts = [part(b) for b in m.blocks]
    source, sink, value = x.source, x.sink, x.value
    if step is not None:
        source, sink = source + alpha * step.source, sink + alpha * step.sink
        value = value + alpha * step.value
    s = np.where(graph.source, source, 1.0)
    z = np.where(graph.sink, sink, 1.0)
    if None in parts or s.min() <= 0 or z.min() <= 0 or value <= 0:
        return math.inf
    dead = m.live.size - m.n_live
    barrier = (
        sum(parts)
        - dead * 2.0 * math.log(0.5)
        + np.log(s).sum()
        + np.log(z).sum()
        + math.log(value)
    )
    return -value - mu * barrier


# --------------------------------------------------------------------------- Newton step


@dataclass
class _Step:
    layers: np.ndarray
    source: np.ndarray
    sink: np.ndarray
    value: float
    decrement: float  # lambda^2 = dx^T H dx (unnormalised)
    factored: _Factor | None = None  # the factor of B D B^T at (x, mu) the step was made with


@dataclass
class _Masks:
    """Per-graph arrays reused by every Newton step (dead edges get harmless values)."""

    live: np.ndarray  # (L, t, t) bool, the live edges; elementwise formulas use f = 0.5 on dead
    u: np.ndarray  # (L, t, t) capacity on live edges, 1.0 elsewhere (so 0 < f < u everywhere)
    n_live: int  # number of live edges
    blocks: list  # layer blocks of the elementwise work (blocks.layer_blocks)

    @classmethod
    def of(cls, graph: LayeredGraph) -> _Masks:
        return cls(live=graph.live, u=np.where(graph.live, graph.caps, 1.0),
                   n_live=int(np.count_nonzero(graph.live)),
                   blocks=layer_blocks(graph.n_layers, graph.n_tokens))


def newton_step(
    graph: LayeredGraph,
    x: FlowState,
    mu: float,
    tangent: bool = False,
    masks: _Masks | None = None,
    passes: int = 3,
    factored: _Factor | None = None,
) -> _Step:
    """Newton direction of the barrier objective under ``B f = 0`` (residual ``B f`` corrected).

    Conductances ``d_e = 1 / h_e`` with ``h_e = mu / f^2 + mu / (u - f)^2``; node potentials ``w``
    solve ``(B D B^T) w = B (f - D g)``; the step is ``df = -D (g + B^T w)``.

    With ``tangent=True`` the gradient is replaced by that of the barrier alone and no residual is
    corrected: the result is ``dx/dmu`` along the central path (differentiate ``g + B^T w = 0``).
    Dead edges have ``d = 0``, so whatever ``g`` or ``q`` hold there never reaches a result.
    ``D`` depends on ``x`` and ``mu`` only (not on ``tangent``): ``factored``, the factor of an
    earlier step at the same ``x`` and ``mu`` (``_Step.factored``), saves the factorisation.
    """
    m = masks if masks is not None else _Masks.of(graph)
    n_layers, t = graph.n_layers, graph.n_tokens
    scale = 1.0 if tangent else mu  # the tangent uses the gradient of the barrier term alone
    keep = not tangent
    # --- per-edge gradient g (into q_l, which the passes then correct in place) and conductance
    # d (dead edges: d = 0), block by block; out_d: conductance leaving each node forward
    q_l = np.empty_like(x.layers)
    d_l = np.empty_like(x.layers)

    def edges(b: Block) -> np.ndarray:
        live = m.live[b]
        f = np.where(live, x.layers[b], 0.5)
        inv_s = 1.0 / (m.u[b] - f)
        inv_f = np.divide(1.0, f, out=f)
        np.multiply(scale, inv_s - inv_f, out=q_l[b])
        np.divide(live, mu * (inv_f * inv_f + inv_s * inv_s), out=d_l[b])  # dead: d = 0
        return d_l[b].sum(axis=1)

    out_d = add_by_layer([edges(b) for b in m.blocks], m.blocks, (n_layers, t))
    s = np.where(graph.source, x.source, 1.0)
    g_s = np.where(graph.source, -scale / s, 0.0)
    d_s = np.where(graph.source, s**2 / mu, 0.0)
    z = np.where(graph.sink, x.sink, 1.0)
    g_z = np.where(graph.sink, -scale / z, 0.0)
    d_z = np.where(graph.sink, z**2 / mu, 0.0)
    g_f = -1.0 / x.value if tangent else -1.0 - mu / x.value
    d_f = x.value**2 / mu

    # --- node potentials: (B D B^T) w = B (keep * f - D g), then q = g + B^T w. The first pass
    # starts from q = g; the ``passes - 1`` more are iterative refinement of conservation (each
    # solves for the residual B (keep * f - D q) left by rounding and corrects q by it).
    fac = factored if factored is not None else factor(graph, d_l, d_s, d_z, d_f, out_d)
    q_s, q_z, q_f = g_s, g_z, g_f
    enter = np.empty((n_layers, t))
    dw = None

    def correct(b: Block) -> np.ndarray:  # q += B^T dw on a block
        q = q_l[b]
        if dw is not None:
            layers, rows = b
            q += dw[layers][:, None, :] - dw[layers.start + 1:layers.stop + 1, rows][:, :, None]
        return q

    def residual(b: Block) -> np.ndarray:  # edge sums of keep * f - d q, after the correction
        a = d_l[b] * correct(b)
        if keep:
            np.subtract(x.layers[b], a, out=a)
        else:
            np.negative(a, out=a)
        a.sum(axis=2, out=enter[b])
        return a.sum(axis=1)

    for _ in range(passes):
        leave = add_by_layer([residual(b) for b in m.blocks], m.blocks, (n_layers, t))
        dw, dw_z = fac.solve(
            *_balance(
                leave,
                enter,
                np.where(graph.source, keep * x.source - d_s * q_s, 0.0),
                np.where(graph.sink, keep * x.sink - d_z * q_z, 0.0),
                keep * x.value - d_f * q_f,
            )
        )
        q_s = q_s + np.where(graph.source, -dw[0], 0.0)
        q_z = q_z + np.where(graph.sink, dw[n_layers] - dw_z, 0.0)
        q_f = q_f + dw_z
    # --- flow step df = -d q with q = g + B^T w (s grounded); lambda^2 = sum d q^2
    step_l = np.empty_like(x.layers)

    def flow(b: Block) -> float:
        q = correct(b)
        dq = np.multiply(d_l[b], q, out=step_l[b])
        dec = float(np.vdot(dq, q))
        np.negative(dq, out=dq)
        return dec

    dec = sum(flow(b) for b in m.blocks)
    dec += float(d_s @ (q_s * q_s) + d_z @ (q_z * q_z) + d_f * q_f**2)
    return _Step(
        layers=step_l,
        source=-d_s * q_s,
        sink=-d_z * q_z,
        value=float(-d_f * q_f),
        decrement=dec,
        factored=fac,
    )


def edge_sums(a_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node sums of an (L, t, t) edge array: leaving ``(k, j)`` and entering ``(k+1, i)``."""
    n_layers, t, _ = a_l.shape
    enter = np.empty((n_layers, t))
    blocks = layer_blocks(n_layers, t)

    def part(b: Block) -> np.ndarray:
        a_l[b].sum(axis=2, out=enter[b])
        return a_l[b].sum(axis=1)

    return add_by_layer([part(b) for b in blocks], blocks, (n_layers, t)), enter


def _balance(
    leave: np.ndarray, enter: np.ndarray, a_s: np.ndarray, a_z: np.ndarray, a_f: float
) -> tuple[np.ndarray, float]:
    n_layers, t = leave.shape
    r = np.zeros((n_layers + 1, t))
    r[:n_layers] += leave
    r[1:] -= enter
    r[0] -= a_s
    r[n_layers] += a_z
    return r, float(a_f - a_z.sum())


def divergence(
    a_l: np.ndarray, a_s: np.ndarray, a_z: np.ndarray, a_f: float
) -> tuple[np.ndarray, float]:
    """Node balance ``B a`` (outflow minus inflow) of an edge vector; ``s`` is grounded.

    Returns the (L+1, t) balance of the token nodes and the balance of the super-sink.
    """
    return _balance(*edge_sums(a_l), a_s, a_z, a_f)


@dataclass
class _Factor:
    """Block Cholesky factor of the grounded node matrix ``B D B^T`` (block tridiagonal)."""

    d_l: np.ndarray
    inv0: np.ndarray
    chols: list
    couplings: list
    u_vec: np.ndarray
    s_z: float

    def solve(self, r: np.ndarray, r_z: float) -> tuple[np.ndarray, float]:
        """Node potentials ``w`` ((L+1, t)) and ``w_z`` with ``(B D B^T) [w; w_z] = [r; r_z]``."""
        n_layers = len(self.chols) - 1
        chols, couplings = self.chols, self.couplings
        # forward: v_k = R_k^-1 y_k with y_{k+1} = r_{k+1} + D_k S_k^-1 y_k
        vs: list = [None]
        y_next = r[1] + _gemv(self.d_l[0], r[0] * self.inv0)
        for k in range(1, n_layers + 1):
            v = _trsm(chols[k], y_next)
            vs.append(v)
            if k < n_layers:
                y_next = r[k + 1] + _gemv(couplings[k - 1], v, trans=True)
        w_z = (r_z + self.u_vec @ vs[n_layers]) / self.s_z
        w = np.zeros_like(r)
        rhs = vs[n_layers] + self.u_vec * w_z
        for k in range(n_layers, 0, -1):
            if k < n_layers:
                rhs = vs[k] + _gemv(couplings[k - 1], w[k + 1])
            w[k] = _trsm(chols[k], rhs, trans=True)
        w[0] = (r[0] + _gemv(self.d_l[0], w[1], trans=True)) * self.inv0
        return w, float(w_z)


def factor(
    graph: LayeredGraph, d_l: np.ndarray, d_s: np.ndarray, d_z: np.ndarray, d_f: float,
    out_d: np.ndarray | None = None, ground: np.ndarray | None = None, single: bool = False,
) -> _Factor:
    """Factor ``B D B^T`` layer by layer, Schur complements kept in Laplacian form.

    ``S_{k+1} = diag(gamma_{k+1} + out_{k+1} + offrowsum(P)) - offdiag(P)`` with
    ``P = D_k S_k^-1 D_k^T`` and the grounding ``gamma_{k+1} = D_k S_k^-1 gamma_k`` propagated
    separately (all terms positive, no cancellation). Layer 0 is diagonal.

    ``ground``: optional (L+1, t) extra conductances from the token nodes to the grounded
    ``s`` (used by :mod:`.face` to pin one node of each otherwise floating component).
    ``d_f = inf`` grounds the super-sink (its potential is 0).

    ``single``: the dense blocks (SYRK, TRSM, Cholesky) in float32, about half the time of
    float64 at t = 512; the factor's solves are then accurate to about float32's precision
    times the blocks' conditioning, for callers that refine in float64 (:mod:`.face`). A
    float32 block that is not positive definite, or overflows, raises ``LinAlgError``.
    """
    blas_dtype = np.float32 if single else np.float64
    n_layers, t, _ = d_l.shape
    nodes = graph.nodes
    if out_d is None:  # (L, t): conductance leaving node (k, j) forward
        out_d = edge_sums(d_l)[0]
    gamma = d_s.copy() if ground is None else d_s + ground[0]
    inv0 = 1.0 / np.where(nodes[0], gamma + out_d[0], 1.0)
    chols: list = [None]
    couplings: list = []
    for k in range(n_layers):
        dk = d_l[k]
        if k == 0:
            half = dk * np.sqrt(inv0)[None, :]  # D_0 S_0^-1/2
            p = _gram_upper(np.ascontiguousarray(half.T, dtype=blas_dtype))
            gamma_next = _gemv(dk, gamma * inv0)
        else:
            w_mat = _trsm(chols[k], np.asfortranarray(dk.T, dtype=blas_dtype))
            couplings.append(w_mat)
            p = _gram_upper(w_mat)
            gamma_next = _gemv(w_mat, _trsm(chols[k], gamma), trans=True)
        if ground is not None:
            gamma_next = gamma_next + ground[k + 1]
        live_next = nodes[k + 1]
        outgoing = out_d[k + 1] if k + 1 < n_layers else d_z
        np.fill_diagonal(p, 0.0)
        off_rows = p.sum(axis=1) + p.sum(axis=0)  # row sums of the symmetric P, diagonal left out
        np.negative(p, out=p)
        p[np.diag_indices(t)] = np.where(live_next, gamma_next + outgoing + off_rows, 1.0)
        chols.append(_cholesky(p))  # from the upper triangle of the Schur complement (P's is
        # the one SYRK filled; p is Fortran-ordered)
        gamma = np.where(live_next, gamma_next, 0.0)
    last = chols[n_layers]
    u_vec = _trsm(last, d_z)
    s_z = d_f + float(u_vec @ _trsm(last, gamma))
    return _Factor(d_l=d_l, inv0=inv0, chols=chols, couplings=couplings, u_vec=u_vec, s_z=s_z)


# --------------------------------------------------------------------------- step length

def _max_step(graph: LayeredGraph, x: FlowState, step: _Step) -> float:
    """Largest alpha keeping every live flow strictly inside (0, u) (dead edges never move)."""

    def part(b: Block) -> float:
        dl, xl = step.layers[b], x.layers[b]
        room = np.where(dl < 0, xl, graph.caps[b] - xl)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dl != 0, room / np.abs(dl), math.inf)
        return float(ratio.min()) if ratio.size else math.inf

    alpha = min(part(b) for b in layer_blocks(graph.n_layers, graph.n_tokens))
    for flow, d, mask in ((x.source, step.source, graph.source), (x.sink, step.sink, graph.sink)):
        neg = mask & (d < 0)
        if neg.any():
            alpha = min(alpha, float((flow[neg] / -d[neg]).min()))
    if step.value < 0:
        alpha = min(alpha, x.value / -step.value)
    return alpha


def _move(x: FlowState, step: _Step, alpha: float) -> FlowState:
    new = np.empty_like(x.layers)
    for b in layer_blocks(*x.layers.shape[:2]):
        np.multiply(alpha, step.layers[b], out=new[b])
        new[b] += x.layers[b]
    return FlowState(
        layers=new,
        source=x.source + alpha * step.source,
        sink=x.sink + alpha * step.sink,
        value=x.value + alpha * step.value,
    )


def _scaled(step: _Step, factor: float) -> _Step:
    return _Step(
        layers=step.layers * factor,
        source=step.source * factor,
        sink=step.sink * factor,
        value=step.value * factor,
        decrement=0.0,
    )


def _combine(x: FlowState, x_prev: FlowState, shrink: float) -> FlowState:
    """Richardson extrapolation to ``mu = 0`` of two central points ``x(mu)``, ``x(mu / shrink)``.

    The central path is analytic at ``mu = 0`` for linear programs,
    ``x(mu) = x* + mu x1 + O(mu^2)``, so ``(x - shrink * x_prev) / (1 - shrink)`` is
    ``O(mu^2)`` from the limit. An affine combination of two circulations is a circulation:
    conservation (and so efficiency) holds exactly.
    """
    c = 1.0 / (1.0 - shrink)
    return FlowState(
        layers=c * (x.layers - shrink * x_prev.layers),
        source=c * (x.source - shrink * x_prev.source),
        sink=c * (x.sink - shrink * x_prev.sink),
        value=c * (x.value - shrink * x_prev.value),
    )


def line_search(
    graph: LayeredGraph, x: FlowState, step: _Step, mu: float, max_step: float,
    masks: _Masks, iters: int = LINE_ITERS,
) -> float:
    """Approximate minimiser of ``psi(a) = phi_mu(x + a dx)`` along a Newton direction.

    ``iters`` one-dimensional Newton iterations from ``a = min(1, LINE_START max_step)``, kept in
    ``(0, BOUNDARY * max_step)`` (a step past either end goes halfway to it instead):
    ``psi' = -dF - mu sum_e [dx_e / f_e(a) - dx_e / (u_e - f_e(a))]`` (source, sink and the
    value term ``log F`` have no upper bound), ``psi'' = mu sum_e [dx_e^2 / f_e(a)^2 +
    dx_e^2 / (u_e - f_e(a))^2]``. ``psi / mu`` is self-concordant, so while its decrement
    ``|psi'| / sqrt(mu psi'')`` exceeds 1/4 each iteration is damped by ``1 / (1 + decrement)``
    (Boyd & Vandenberghe Sec. 9.6), which lowers ``psi`` and stays in the domain. Far from the
    centre the Newton direction is right but its length is not; a step of the minimising
    length, often longer than 1, saves the slow stretches where ``lambda^2 / mu`` falls from
    about 1 to 0.1. The caller checks the decrease (:func:`gaflow.solvers.path.solve`).
    """
    ends = [(x.source[graph.source], step.source[graph.source]),
            (x.sink[graph.sink], step.sink[graph.sink]),
            (np.array([x.value]), np.array([step.value]))]
    bound = BOUNDARY * max_step
    a = min(1.0, LINE_START * max_step)

    def part(b: Block) -> tuple[float, float]:  # the layer edges' terms of psi', psi'' / mu
        f = np.where(masks.live[b], x.layers[b], 0.5)
        slack = masks.u[b] - f
        d = step.layers[b]  # zero on dead edges
        p = d / (f + a * d)
        q = d / (slack - a * d)
        return float(p.sum() - q.sum()), float(np.vdot(p, p) + np.vdot(q, q))

    for _ in range(iters):
        parts = [part(b) for b in masks.blocks]
        g1 = sum(p[0] for p in parts)
        g2 = sum(p[1] for p in parts)
        for v, dv in ends:
            r = dv / (v + a * dv)
            g1 += float(r.sum())
            g2 += float(r @ r)
        g1 = -step.value - mu * g1
        g2 = mu * g2
        if g2 <= 0:
            break
        dec = abs(g1) / math.sqrt(mu * g2)
        move = -g1 / g2 / (1.0 + dec) if dec > 0.25 else -g1 / g2
        a = a + move if 0 < a + move < bound else 0.5 * (a + (bound if move > 0 else 0.0))
    return a


# --------------------------------------------------------------------------- kernels


class NumpyKernels:
    """:class:`gaflow.solvers.path.Kernels` over NumPy and SciPy's BLAS.

    A batch is a list: graphs ``[(LayeredGraph, _Masks)]`` (:meth:`batch`), flows
    ``[FlowState]``, steps ``[_Step]``, factors ``[_Factor]``. ``solve_flow`` runs one graph at a
    time (B = 1); each kernel loops over the list.
    """

    @staticmethod
    def batch(graphs: list[LayeredGraph]) -> list[tuple[LayeredGraph, _Masks]]:
        return [(g, _Masks.of(g)) for g in graphs]

    def take_graph(self, g, rows):
        return [g[r] for r in rows]

    def interior_start(self, g):
        return [interior_start(graph) for graph, _ in g]

    def feasible_start(self, g):
        return [feasible_start(graph) for graph, _ in g]

    def imbalance(self, g, x):
        return np.array([imbalance(graph, xi) for (graph, _), xi in zip(g, x, strict=True)])

    def values(self, x):
        return np.array([xi.value for xi in x], dtype=float)

    def sources(self, x):
        return [xi.source for xi in x]

    def take(self, x, rows):
        return [x[r] for r in rows]

    def put(self, x, rows, part):
        out = list(x)
        for r, p in zip(rows, part, strict=True):
            out[r] = p
        return out

    def zeros_like(self, x):
        return [None] * len(x)  # the driver reads a slot only after putting a point there

    def newton_step(self, g, x, mu, tangent, passes, factored=None):
        steps, facs = [], []
        for j, ((graph, masks), xi) in enumerate(zip(g, x, strict=True)):
            if not xi.value > 0:  # the barrier of the return edge divides by F (a cut of ~1e-308)
                raise SingularSystem([j], "flow value 0 in the Newton step")
            try:
                step = newton_step(graph, xi, float(mu[j]), tangent=bool(tangent[j]),
                                   masks=masks, passes=passes[j],
                                   factored=None if factored is None else factored[j])
            except np.linalg.LinAlgError as exc:
                raise SingularSystem([j], str(exc)) from None
            facs.append(step.factored)
            step.factored = None  # the driver holds the factor only while it may reuse it
            steps.append(step)
        return steps, np.array([s.decrement for s in steps]), facs

    def take_factor(self, fac, rows):
        return [fac[r] for r in rows]

    def max_step(self, g, x, step):
        return np.array([_max_step(graph, xi, si)
                         for (graph, _), xi, si in zip(g, x, step, strict=True)])

    def line_search(self, g, x, step, mu, amax, which):
        out = np.full(len(x), math.nan)
        for j, ((graph, masks), xi, si) in enumerate(zip(g, x, step, strict=True)):
            if which[j]:
                out[j] = line_search(graph, xi, si, float(mu[j]), float(amax[j]), masks)
        return out

    def objective(self, g, x, mu, which, step=None, alpha=None):
        out = np.full(len(x), math.nan)
        for j, ((graph, masks), xi) in enumerate(zip(g, x, strict=True)):
            if which[j]:
                along = None if step is None else (step[j], float(alpha[j]))
                out[j] = objective(graph, xi, float(mu[j]), masks, along=along)
        return out

    def move(self, x, step, alpha):
        return [xi if a == 0 else _move(xi, si, float(a))
                for xi, si, a in zip(x, step, alpha, strict=True)]

    def scale(self, step, factor):
        return [_scaled(si, float(f)) for si, f in zip(step, factor, strict=True)]

    def combine(self, x, prev, shrink):
        return [_combine(xi, pi, shrink) for xi, pi in zip(x, prev, strict=True)]
