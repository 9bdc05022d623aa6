"""Mehrotra predictor-corrector on the maximum-flow LP, to reach the optimal face fast.

The LP (normalised units; ``B`` the node-edge incidence with ``s`` grounded, return edge
``z -> s`` carrying ``F``):

    minimise  -F   subject to   B f = 0,   0 <= f_e <= u_e (layer edges),   f >= 0 (others).

Primal-dual interior point (Wright, *Primal-Dual Interior-Point Methods*, Ch. 10; Mehrotra
1992): potentials ``y``, dual slacks ``z_l >= 0`` on every edge and ``z_u >= 0`` on the layer
edges, complementarity ``f z_l = sigma mu``, ``(u - f) z_u = sigma mu``. Eliminating the slacks
leaves ``(B D B^T) dy = r`` with ``D = 1 / (z_l / f + z_u / (u - f))``: the same
block-tridiagonal node system as the barrier Newton step, factored once per iteration
(:func:`gaflow.solvers.newton.factor`) and solved twice (predictor, corrector).

Infeasible start (no restoration): flows at half the capacity (capped at 1), ``z = 1 / f`` and
``1 / (u - f)``. The iterates approach the optimal face without following the central path
closely, so their limit is some point of the face, not the central flow: they are used only
to guess the face (:func:`gaflow.solvers.face.certify`, with the primal-dual indicator ``f >
z_l``: not at 0, ``u - f > z_u``: not at ``u``), whose certified analytic centre
(:func:`gaflow.solvers.face.centre`) is the central flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..flow.graph import LayeredGraph
from . import face as fc
from .newton import FlowState, divergence, factor

STEP = 0.99  # fraction of the largest step to the boundary
TRY_GAP = 1e-3  # face tries start once the mean complementarity falls below this times F
MAX_ITER = 50  # iterations before the caller falls back to path following
GUESSES = (False, True)
STABLE = 1e-3  # face tries once at most this fraction of the indicator arcs changed ...
WAIT = 3  # ... or this many iterations after the last try
SHARE = 0.01  # second guess: an edge with this share of its head's mean in-edge flow is not at 0
SIGMA_MIN = 0.2  # least centring weight: iterates kept near the central path (see solve)


@dataclass
class PDResult:
    """Outcome of :func:`solve`: the certified central flow (or ``None``), the factorisations
    spent (primal-dual iterations plus centring steps) and why it stopped."""

    x: FlowState | None
    steps: int
    message: str
    decrement: float


def solve(graph: LayeredGraph, rtol: float = 1e-6, max_iter: int | None = None) -> PDResult:
    """Predictor-corrector iterations until a face guess is certified and centred.

    Each iteration: one factorisation of ``B D B^T``; the affine (predictor) direction; the
    centring weight ``sigma = max(SIGMA_MIN, (gap_aff / gap)^3)`` (Mehrotra's rule, floored:
    with ``sigma -> 0`` the iterates reach the face in fewer iterations but near its
    boundary, and centring from there takes many more steps than it saves); the corrector
    direction with the predictor's second-order term; separate primal and dual step lengths,
    ``STEP`` of the way to the boundary. Once the mean complementarity is below ``TRY_GAP * F``
    every iterate is used for a face try: arcs from the indicators ``f > z_l`` and ``u - f >
    z_u`` (:func:`gaflow.solvers.face.certify`), then the centring
    (:func:`gaflow.solvers.face.centre`) from the iterate. Returns ``x=None`` after
    ``max_iter`` iterations, a failed factorisation or non-finite values: the caller then
    follows the path instead (never a result without the face certificate). ``max_iter``
    defaults to ``MAX_ITER`` (read at the call: 0 skips the phase).
    """
    with np.errstate(all="ignore"):
        return _solve(graph, rtol, MAX_ITER if max_iter is None else max_iter)


@dataclass
class _Point:
    """A primal-dual iterate. Layer arrays (L, t, t) hold placeholders on dead edges (f = 0.5,
    u = 1, z = 1), which every reduction and step ratio leaves out; ``e*`` are the (2t + 1,)
    "end" edges: source edges, sink edges, the return edge (no upper bound)."""

    x: np.ndarray
    zl: np.ndarray
    zu: np.ndarray
    ex: np.ndarray
    ez: np.ndarray
    w: np.ndarray  # (L+1, t) potentials of the token nodes
    wz: float  # potential of the super-sink


class _System:
    """One iteration's linearisation: conductances, dual residuals and the factor."""

    def __init__(self, graph: LayeredGraph, u: np.ndarray, emask: np.ndarray, p: _Point):
        live = graph.live
        n_layers, t = graph.n_layers, graph.n_tokens
        self.graph, self.live, self.emask, self.p = graph, live, emask, p
        self.slack = u - p.x
        # dual residual r_d = c - B^T y - z_l + z_u (c: -1 on the return edge)
        bt = p.w[:-1][:, None, :] - p.w[1:][:, :, None]  # B^T y: tail minus head potential
        self.rd = -bt - p.zl + p.zu
        ebt = np.concatenate([-p.w[0], p.w[n_layers] - p.wz, [p.wz]])
        self.erd = np.where(emask, -ebt - p.ez, 0.0)
        self.erd[-1] -= 1.0
        h = p.zl / p.x
        h += p.zu / self.slack
        self.d = np.divide(live, h, out=h)  # dead edges: 0
        self.ed = np.where(emask, p.ex / p.ez, 0.0)
        self.fac = factor(graph, self.d, self.ed[:t], self.ed[t:2 * t], float(self.ed[-1]))
        self.t, self.n_layers = t, n_layers

    def direction(self, rl, ru, erl):
        """Newton direction for complementarity targets ``rl``, ``ru`` (layer edges, lower and
        upper) and ``erl`` (end edges): ``rho = r_d - X^-1 r_l + W^-1 r_u``, ``(B D B^T) dy =
        B (D rho - x)``, ``dx = D (B^T dy - rho)``, then the dual slacks' steps."""
        p, t, n_layers = self.p, self.t, self.n_layers
        rho = ru / self.slack
        rho -= rl / p.x
        rho += self.rd
        erho = self.erd - erl / p.ex
        ea = np.where(self.emask, self.ed * erho - p.ex, 0.0)
        r, r_z = divergence(self.d * rho - np.where(self.live, p.x, 0.0), ea[:t], ea[t:2 * t],
                            float(ea[-1]))
        dw, dwz = self.fac.solve(r, r_z)
        dx = dw[:-1][:, None, :] - dw[1:][:, :, None]
        dx -= rho
        dx *= self.d
        ebt = np.concatenate([-dw[0], dw[n_layers] - dwz, [dwz]])
        edx = np.where(self.emask, self.ed * (ebt - erho), 0.0)
        dzl = p.zl * dx
        np.subtract(rl, dzl, out=dzl)
        dzl /= p.x
        dzu = p.zu * dx
        dzu += ru
        dzu /= self.slack
        edz = np.where(self.emask, (erl - p.ez * edx) / p.ex, 0.0)
        return dw, dwz, dx, edx, dzl, dzu, edz

    def lengths(self, dx, edx, dzl, dzu, edz):
        """Largest primal and dual steps (at most 1) keeping the iterate inside its bounds."""
        p, live, em = self.p, self.live, self.emask
        ap = min(_ratio(p.x, dx, live), _ratio(self.slack, -dx, live), _ratio(p.ex, edx, em))
        ad = min(_ratio(p.zl, dzl, live), _ratio(p.zu, dzu, live), _ratio(p.ez, edz, em))
        return min(1.0, ap), min(1.0, ad)

    def gap(self, ap=0.0, ad=0.0, step=None) -> float:
        """Total complementarity, at the iterate or after steps ``ap``, ``ad`` along ``step``."""
        p, live, em = self.p, self.live, self.emask
        if step is None:
            lay = p.x * p.zl
            lay += self.slack * p.zu
            return float(np.sum(lay, where=live) + (p.ex * p.ez)[em].sum())
        _, _, dx, edx, dzl, dzu, edz = step
        lay = (p.x + ap * dx) * (p.zl + ad * dzl)
        lay += (self.slack - ap * dx) * (p.zu + ad * dzu)
        return float(np.sum(lay, where=live) + ((p.ex + ap * edx) * (p.ez + ad * edz))[em].sum())


def _solve(graph: LayeredGraph, rtol: float, max_iter: int) -> PDResult:
    live, caps = graph.live, graph.caps
    n_layers, t, _ = caps.shape
    u = np.where(live, caps, 1.0)
    emask = np.concatenate([graph.source, graph.sink, [True]])
    x = np.where(live, 0.5 * np.minimum(caps, 1.0), 0.5)
    xl = np.where(live, x, 0.0)
    ex = np.concatenate([np.maximum(xl[0].sum(axis=0), 1e-3),
                         np.maximum(xl[-1].sum(axis=1), 1e-3), [0.0]])
    ex = np.where(emask, ex, 1.0)
    ex[-1] = float(ex[:t][graph.source].sum())
    p = _Point(x=x, zl=1.0 / x, zu=1.0 / (u - x), ex=ex, ez=1.0 / ex,
               w=np.zeros((n_layers + 1, t)), wz=0.0)
    n_live = int(live.sum())
    n_comp = 2 * n_live + int(emask.sum())
    steps = 0
    last, waited = None, 0
    for _ in range(max_iter):
        try:
            lin = _System(graph, u, emask, p)
        except np.linalg.LinAlgError as exc:
            return PDResult(None, steps, f"primal-dual: {exc}", math.inf)
        gap = lin.gap()
        mu = gap / n_comp
        value = float(p.ex[-1])
        if not (math.isfinite(mu) and mu > 0.0 and math.isfinite(value)):
            return PDResult(None, steps, f"primal-dual: complementarity {mu:.1e}", math.inf)
        steps += 1  # the factorisation made by _System
        arcs = None
        if mu <= TRY_GAP * max(value, 1e-300) and steps >= 3:
            # a try (certificate: two or three SCC computations) only once the indicators
            # have settled: at most STABLE of the arcs changed since the last iteration
            arcs = (live & (lin.slack > p.zu), live & (p.x > p.zl))
        if arcs is not None and last is not None and (
                waited >= WAIT
                or np.count_nonzero(arcs[0] != last[0]) + np.count_nonzero(arcs[1] != last[1])
                <= STABLE * n_live):
            waited = 0
            res = _try_face(graph, p, lin.slack, rtol)
            if res is not None:
                steps += res.steps
                if res.ok:
                    return PDResult(res.x, steps, "", res.decrement)
        last = arcs
        waited += arcs is not None
        # predictor (affine scaling), then Mehrotra's centring and second-order corrector
        aff = lin.direction(-p.x * p.zl, -lin.slack * p.zu, -p.ex * p.ez)
        ap, ad = lin.lengths(*aff[2:])
        sigma = max(SIGMA_MIN, (lin.gap(ap, ad, aff) / gap) ** 3)
        sm = sigma * mu
        _, _, dx, edx, dzl, dzu, edz = aff
        cor = lin.direction(sm - p.x * p.zl - dx * dzl, sm - lin.slack * p.zu + dx * dzu,
                            sm - p.ex * p.ez - edx * edz)
        ap, ad = lin.lengths(*cor[2:])
        ap, ad = STEP * ap, STEP * ad
        dw, dwz, dx, edx, dzl, dzu, edz = cor
        p = _Point(x=np.where(live, p.x + ap * dx, 0.5), zl=np.where(live, p.zl + ad * dzl, 1.0),
                   zu=np.where(live, p.zu + ad * dzu, 1.0),
                   ex=np.where(emask, p.ex + ap * edx, 1.0),
                   ez=np.where(emask, p.ez + ad * edz, 1.0), w=p.w + ad * dw, wz=p.wz + ad * dwz)
    return PDResult(None, steps, f"no certified face in {max_iter} primal-dual iterations",
                    math.inf)


def _try_face(graph: LayeredGraph, p: _Point, slack: np.ndarray, rtol: float):
    """Guess the face from the indicators, certify it, centre on it (None: not certified).

    Arcs: forward where ``u - f > z_u``, backward where ``f > z_l``; an edge where neither
    fires (both slacks far below ``mu``) is put at the nearer bound. When the first guess
    leaves a node with only fixed edges unbalanced (a node carrying ~1e-8 of ``F``, whose
    in-edges' flows are still below their dual slacks), a second guess also gives a
    backward arc to every edge with ``SHARE`` of its head node's mean in-edge flow.
    """
    live, t = graph.live, graph.n_tokens
    fwd = live & (slack > p.zu)
    back = live & (p.x > p.zl)
    eback = p.ex > p.ez
    full = live & np.where(fwd | back, ~fwd, p.x >= slack)
    start = FlowState(layers=np.where(live, p.x, 0.0),
                      source=np.where(graph.source, p.ex[:t], 0.0),
                      sink=np.where(graph.sink, p.ex[t:2 * t], 0.0), value=float(p.ex[-1]))
    res, steps = None, 0
    for second in GUESSES:
        if second:
            xl = start.layers
            n_in = np.maximum(live.sum(axis=2, keepdims=True), 1)
            back = back | (live & (xl * n_in > SHARE * xl.sum(axis=2, keepdims=True)))
        guess = fc.certify(graph, fwd, back, graph.source & eback[:t],
                           graph.sink & eback[t:2 * t], full)
        if guess is None:
            return res
        res = fc.centre(graph, guess, start, rtol=rtol)
        res.steps += steps
        steps = res.steps
        if res.ok or res.steps > 0:  # certified, or a centring failed in its own right
            return res
    return res


def _ratio(v: np.ndarray, dv: np.ndarray, mask: np.ndarray) -> float:
    """Largest ``a`` with ``v + a dv >= 0`` where ``mask`` (``v > 0`` there): ``-1 / min(dv /
    v)`` (two passes, no gathers)."""
    q = np.divide(dv, v)
    low = float(np.min(q, where=mask, initial=0.0))
    return -1.0 / low if low < 0.0 else math.inf
