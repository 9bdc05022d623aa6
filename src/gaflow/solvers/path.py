"""Path following for the layered barrier max-flow problem, written once for every backend.

The driver below runs the barrier method of :mod:`.newton` (GAF Eq. 5; Boyd & Vandenberghe
Sec. 10.3 and 11.3) on a batch of graphs in lock step: each *round* computes one Newton (or
predictor) direction for every graph still running; a graph whose run has ended drops out of the
rounds that follow. All decisions (centring tolerance, damping, line search acceptance, step
length, ``mu`` schedule, extrapolation, stopping, warnings) are made here on per-graph NumPy
scalars held in one :class:`PathState`; the arithmetic on flows is left to a backend's
:class:`Kernels`, which see only the graphs of the round, on a leading batch axis.

Backends: :class:`gaflow.solvers.newton.NumpyKernels` (SciPy BLAS, cache-blocked; used with one
graph per run) and :class:`gaflow.solvers.torch_newton.TorchKernels` (batched Cholesky on CPU or
CUDA). A new objective on the same graphs (a different barrier or an entropy term) needs new
kernels for the edge terms, objective and line search, and can reuse this driver as long as its
Newton system keeps the ``B D B^T`` form.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import ConvergenceWarning

TIGHT = 1e-12  # centring tolerance (lambda^2 / mu) of every point a result is made from
LOOSE = 4.0  # mu=None: centring tolerance of the early stages (see solve)
SWITCH = 1e3  # mu=None: early stages end when extrapolations agree to SWITCH * rtol
SWITCH_MU = 1e-8  # ... or at the latest at this mu
MU_MIN = 1e-13  # mu=None: the run gives up below this mu
LOOSE_PASSES = 2  # solves per Newton step in the loose stages (3 elsewhere)
RESTORE_STEPS = 50  # steps allowed to balance the interior start (else: feasible_start)
RESTORED = 1e-9  # imbalance (relative to max(1, F)) below which a point counts as balanced
BOUNDARY = 0.995  # Newton steps stop at this fraction of the largest step inside the bounds
PREDICT = 0.9  # ... and predictor steps at this fraction
DAMPED = 0.25  # lambda^2 / mu above which a centring step is line-searched (damped phase)
ARMIJO = 0.01  # sufficient decrease of a damped step: phi drops by ARMIJO * alpha * lambda^2
LINE_ITERS = 2  # one-dimensional Newton iterations of the damped phase's line search ...
LINE_START = 0.9  # ... from min(1, LINE_START * the largest step inside the bounds)

# statuses of a run (PathResult.status); only CONVERGED meets the accuracy contract
RUNNING = "running"
CONVERGED = "converged"
MAX_ITER = "max_iter"
MU_FLOOR = "mu_floor"
BREAKDOWN = "breakdown"


class SingularSystem(ArithmeticError):
    """Raised by a kernel when the Newton system of some graphs of the round is not positive
    definite (or not finite); ``rows`` are their positions in the round's batch."""

    def __init__(self, rows: list[int], what: str = "Newton system not positive definite"):
        super().__init__(what)
        self.rows = rows
        self.what = what


class Kernels(Protocol):
    """What a backend supplies. ``G``, ``X`` (flows), ``S`` (steps) and ``F`` (factors) are the
    backend's own batch types; the leading axis is the batch. Per-graph scalars come and go as
    float64 NumPy arrays ``(B,)``; ``rows`` are lists of batch positions.

    The barrier problem and its Newton step are documented in :mod:`gaflow.solvers.newton`.
    """

    def take_graph(self, g: Any, rows: list[int]) -> Any:
        """The graphs at ``rows`` (the whole batch when ``rows`` is all of it)."""

    def interior_start(self, g: Any) -> Any:
        """Interior, generally unbalanced flows (``newton.interior_start``)."""

    def feasible_start(self, g: Any) -> Any:
        """Strictly feasible circulations (``newton.feasible_start``)."""

    def imbalance(self, g: Any, x: Any) -> np.ndarray:
        """(B,) ``max |B f|``."""

    def values(self, x: Any) -> np.ndarray:
        """(B,) flow values ``F``."""

    def sources(self, x: Any) -> list[np.ndarray]:
        """Per graph, the source-edge flows (the attributions, normalised units)."""

    def take(self, x: Any, rows: list[int]) -> Any:
        """Flows at ``rows``."""

    def put(self, x: Any, rows: list[int], part: Any) -> Any:
        """``x`` with the flows at ``rows`` replaced by ``part`` (may update ``x`` in place)."""

    def zeros_like(self, x: Any) -> Any:
        """Flows of the same shapes, all zero (storage for the driver's saved points)."""

    def newton_step(self, g: Any, x: Any, mu: np.ndarray, tangent: np.ndarray,
                    passes: list[int], factored: Any = None) -> tuple[Any, np.ndarray, Any]:
        """Newton directions (``dx/dmu`` where ``tangent``), decrements ``lambda^2`` (B,) and
        the factor used; ``factored``: a factor at the same ``x`` and ``mu`` to reuse. Raises
        :class:`SingularSystem` naming the graphs whose system cannot be factored."""

    def take_factor(self, fac: Any, rows: list[int]) -> Any:
        """The factor of the graphs at ``rows`` (in that order)."""

    def max_step(self, g: Any, x: Any, step: Any) -> np.ndarray:
        """(B,) largest ``alpha`` keeping ``x + alpha step`` strictly inside the bounds."""

    def line_search(self, g: Any, x: Any, step: Any, mu: np.ndarray, amax: np.ndarray,
                    which: np.ndarray) -> np.ndarray:
        """(B,) step lengths of ``newton.line_search`` (meaningful where ``which``)."""

    def objective(self, g: Any, x: Any, mu: np.ndarray, which: np.ndarray,
                  step: Any = None, alpha: np.ndarray | None = None) -> np.ndarray:
        """(B,) barrier objective at ``x`` (or ``x + alpha step``); +inf outside the domain;
        meaningful where ``which``."""

    def move(self, x: Any, step: Any, alpha: np.ndarray) -> Any:
        """``x + alpha step`` (``alpha = 0`` leaves a graph where it is)."""

    def scale(self, step: Any, factor: np.ndarray) -> Any:
        """``factor * step``."""

    def combine(self, x: Any, prev: Any, shrink: float) -> Any:
        """Richardson extrapolation ``(x - shrink prev) / (1 - shrink)`` (``newton._combine``)."""


@dataclass
class PathState:
    """Per-graph status of a run, index = graph of the batch."""

    mu: np.ndarray  # barrier weight of the current stage
    mu_next: np.ndarray  # ... of the next stage (where predict)
    total: np.ndarray  # Newton steps taken
    tight: np.ndarray  # centring tightly (TIGHT) rather than loosely
    status: list[str]
    predict: np.ndarray = field(init=False)  # next round: a predictor step to mu_next
    lam_prev: np.ndarray = field(init=False)  # last decrement of this centring run (inf: none)
    phi: np.ndarray = field(init=False)  # objective at x where known (nan: not known)
    stage_steps: np.ndarray = field(init=False)  # Newton steps since the last predictor
    err: np.ndarray = field(init=False)  # last disagreement of two extrapolations
    err_loose: np.ndarray = field(init=False)  # ... of two loose ones (0: none yet)
    has_prev: np.ndarray = field(init=False)  # a centred point is saved (and tight)
    prev_ok: np.ndarray = field(init=False)
    has_best: np.ndarray = field(init=False)  # an extrapolation is saved (of tight points)
    best_ok: np.ndarray = field(init=False)
    message: list[str] = field(init=False)

    def __post_init__(self):
        n = len(self.mu)
        self.predict = np.zeros(n, dtype=bool)
        self.lam_prev = np.full(n, math.inf)
        self.phi = np.full(n, math.nan)
        self.stage_steps = np.zeros(n, dtype=int)
        self.err = np.full(n, math.inf)
        self.err_loose = np.zeros(n)
        self.has_prev = np.zeros(n, dtype=bool)
        self.prev_ok = np.zeros(n, dtype=bool)
        self.has_best = np.zeros(n, dtype=bool)
        self.best_ok = np.zeros(n, dtype=bool)
        self.message = [""] * n

    def running(self) -> list[int]:
        return [b for b, s in enumerate(self.status) if s == RUNNING]

    def end(self, b: int, status: str, message: str = "") -> None:
        self.status[b] = status
        self.message[b] = message


@dataclass
class PathResult:
    """The flows and, per graph, how the run ended (``status`` is one of ``CONVERGED``,
    ``MAX_ITER``, ``MU_FLOOR``, ``BREAKDOWN``; ``message`` says why in words)."""

    x: Any
    status: list[str]
    message: list[str]
    iterations: list[int]
    mu: list[float]
    error_estimate: list[float]

    @property
    def converged(self) -> list[bool]:
        return [s == CONVERGED for s in self.status]


def solve(
    kernels: Kernels,
    g: Any,
    n_graphs: int,
    mu: float | None = None,
    rtol: float = 1e-6,
    mu_start: float = 1.0,
    shrink: float = 0.1,
    max_iter: int = 300,
    loose: float = LOOSE,
    switch: float = SWITCH,
    labels: list[str] | None = None,
    finish: Callable[[int, Any, float], tuple[Any, int, float]] | None = None,
) -> PathResult:
    """Path-following barrier method on a batch of ``n_graphs`` layered graphs.

    Args:
        kernels: the backend's :class:`Kernels`; ``g`` its batch of graphs (normalised units).
        mu: the barrier weight to solve for exactly; ``None`` for the ``mu -> 0`` limit.
        rtol: for ``mu=None``, the bound on ``max|phi - phi*| / max|phi*|``.
        mu_start: first point of the central path.
        shrink: factor by which ``mu`` decreases between centring stages.
        max_iter: cap on each graph's number of Newton steps.
        loose: ``mu=None``: centring tolerance (on ``lambda^2 / mu``) of the early stages.
        switch: ``mu=None``: the early stages end once two extrapolations from loosely centred
            points agree to ``switch * rtol * max|phi|`` while their disagreement is shrinking
            (at most half the previous one), at the latest at ``mu = SWITCH_MU``.
        labels: names of the graphs in warnings (default: none for one graph, else "graph k").
        finish: ``mu=None`` only: called as ``finish(b, K.take(x, [b]), mu)`` at the end of
            every centring stage of graph ``b``; returns ``(flows, steps, error)``: flows (a
            batch of one) that are the ``mu -> 0`` limit to ``rtol``, certified by the hook
            (the run of ``b`` then ends converged with that error estimate), or ``None`` (the
            run goes on), and the Newton steps it spent (they count).
            :class:`gaflow.solvers.face.Finisher` is the NumPy one.

    Centring (per stage) is damped Newton on the barrier objective for a fixed ``mu``; it ends
    when the normalised decrement ``lambda^2 / mu`` (the objective over ``mu`` is
    self-concordant) falls below the stage's tolerance after at least one step in a loose
    stage, or stalls at the rounding floor below ``1e-8``. Damped phase (``lambda^2 / mu >
    DAMPED``): the step length comes from the kernels' line search and is kept if it lowers the
    objective by ``ARMIJO * min(alpha, 1) * lambda^2``; otherwise Armijo backtracking from the
    full step, floored by the self-concordant step ``1 / (1 + lambda)``. Quadratic phase: full
    steps cut at ``BOUNDARY`` of the boundary. Between stages a first-order predictor moves
    along the tangent ``dx/dmu`` to the next ``mu`` (cut at ``PREDICT`` of the boundary),
    reusing the factor of the step that ended the centring (the tangent shares its matrix).

    For ``mu=None`` each pair of consecutive central points is extrapolated to ``mu = 0``
    (``combine``); the run stops when two consecutive extrapolations agree to ``rtol *
    max|phi|`` (the later one is then about ``shrink^2`` times closer still). Early stages are
    centred only loosely (``lambda^2 / mu <= loose``): their points serve to move along the
    path and to tell when the end is near, never as results. From then on every stage is
    centred to ``TIGHT`` (the point where the switch happens is re-centred first), and only
    extrapolations of such points may stop the run.

    The run starts from the kernels' interior start balanced by infeasible-start Newton steps
    (which count), or from their feasible start if that fails. A graph whose Newton system
    cannot be factored ends with status ``BREAKDOWN``; every graph that does not converge gets
    a :class:`ConvergenceWarning` (raised here and nowhere else).
    """
    K = kernels
    target = mu
    st = PathState(
        mu=np.full(n_graphs, mu_start if target is None else max(mu_start, target)),
        mu_next=np.zeros(n_graphs),
        total=np.zeros(n_graphs, dtype=int),
        tight=np.full(n_graphs, target is not None),
        status=[RUNNING] * n_graphs,
    )
    x = _restore(K, g, K.interior_start(g), st)
    prev = K.zeros_like(x)  # last centred point per graph (valid where has_prev)
    best = K.zeros_like(x)  # last extrapolation per graph (valid where has_best)
    cached = None  # (graph -> row, factor) of the last round, if no graph of it moved
    while True:
        rows = st.running()
        if not rows:
            break
        gs, xs = K.take_graph(g, rows), K.take(x, rows)
        mus, pr = st.mu[rows], st.predict[rows]
        tight = st.tight[rows]
        passes = [3 if t or p else LOOSE_PASSES for t, p in zip(tight, pr, strict=True)]
        # the predictor's tangent shares its matrix with the (untaken) step that ended the
        # centring at the same point: reuse that factor when every graph of the round predicts
        reuse = None
        if cached is not None and pr.all() and all(b in cached[0] for b in rows):
            reuse = K.take_factor(cached[1], [cached[0][b] for b in rows])
        cached = None
        try:
            step, dec, fac = K.newton_step(gs, xs, mus, pr, passes, factored=reuse)
        except SingularSystem as exc:
            for j in exc.rows:
                st.end(rows[j], BREAKDOWN, f"{exc.what} at mu={st.mu[rows[j]]:.2e}")
            continue
        del reuse
        bad = [j for j in range(len(rows)) if not math.isfinite(dec[j])]
        if bad:
            for j in bad:
                st.end(rows[j], BREAKDOWN, f"non-finite Newton step at mu={st.mu[rows[j]]:.2e}")
            continue
        # predictor moves: x + alpha (mu_next - mu) dx/dmu, alpha <= PREDICT * the boundary step
        if pr.any():
            scaled = K.scale(step, st.mu_next[rows] - mus)
            alpha = np.minimum(PREDICT * K.max_step(gs, xs, scaled), 1.0)
            xs = K.move(xs, scaled, np.where(pr, alpha, 0.0))
            mus = np.where(pr, st.mu_next[rows], mus)
        cen = ~pr
        lam2 = dec / mus
        lp = np.where(pr, math.inf, st.lam_prev[rows])
        tol = np.where(tight, TIGHT, loose)
        stepped = tight | (st.stage_steps[rows] > 0)  # a loose stage takes >= 1 corrector step
        finished = cen & (((lam2 <= tol) & stepped) | ((lam2 <= 1e-8) & (lam2 > 0.1 * lp)))
        budget = st.total[rows] < max_iter
        moving = cen & ~finished & budget
        finished = finished | (cen & ~budget)
        # every graph of this round ended its centring without moving: keep the factor for
        # the predictors of the next round (else drop it now: it holds 2 L t^2 per graph)
        keep = fac if finished.all() else None
        del fac
        phi = np.where(pr, math.nan, st.phi[rows])
        if moving.any():
            xs, phi = _centre_move(K, gs, xs, step, mus, lam2, moving, phi)
        del step
        x = K.put(x, rows, xs)
        if keep is not None:
            cached = ({b: j for j, b in enumerate(rows)}, keep)
        del keep
        st.mu[rows] = mus
        st.lam_prev[rows] = np.where(cen, lam2, lp)
        st.phi[rows] = phi
        st.predict[rows] = False
        st.stage_steps[rows] = np.where(pr, 0, st.stage_steps[rows]) + moving
        st.total[rows] += moving
        for j in np.flatnonzero(finished):
            b = rows[j]
            if target is None and finish is not None:
                done, spent, err = finish(b, K.take(x, [b]), float(st.mu[b]))
                st.total[b] += spent
                if done is not None:
                    x = K.put(x, [b], done)
                    st.err[b] = err
                    st.end(b, CONVERGED)
                    continue
            x, prev, best = _end_stage(K, st, b, lam2[j], tol[j], x, prev, best,
                                       target, rtol, shrink, max_iter, switch)
    for b in range(n_graphs):
        if st.status[b] != CONVERGED:
            name = labels[b] if labels is not None else (f"graph {b}" if n_graphs > 1 else "")
            warnings.warn(
                f"barrier Newton{' (' + name + ')' if name else ''} stopped after "
                f"{st.total[b]} steps without meeting its accuracy target: {st.message[b]}; "
                "results may be inaccurate",
                ConvergenceWarning,
                stacklevel=4,
            )
    return PathResult(x, list(st.status), list(st.message), st.total.tolist(), st.mu.tolist(),
                      st.err.tolist())


def _centre_move(K, gs, xs, step, mus, lam2, moving, phi):
    """Move the graphs where ``moving`` along their Newton step (damped where ``lambda^2 / mu
    > DAMPED``: line search checked by Armijo, else backtracking); returns the flows and the
    objective at the new points where a trial evaluated it (nan elsewhere)."""
    amax = K.max_step(gs, xs, step)
    alpha = np.minimum(BOUNDARY * amax, 1.0)
    damped = moving & (lam2 > DAMPED)
    accepted = np.full(len(mus), math.nan)
    if damped.any():
        need0 = damped & np.isnan(phi)
        phi0 = phi.copy()
        if need0.any():
            phi0 = np.where(need0, K.objective(gs, xs, mus, need0), phi)
        length = K.line_search(gs, xs, step, mus, amax, damped)
        trial = K.objective(gs, xs, mus, damped, step, np.where(damped, length, 0.0))
        good = damped & (trial <= phi0 - ARMIJO * np.minimum(length, 1.0) * mus * lam2)
        alpha = np.where(good, length, alpha)
        accepted = np.where(good, trial, accepted)
        floor = np.minimum(alpha, 1.0 / (1.0 + np.sqrt(lam2)))
        need = damped & ~good & (alpha > floor)
        while need.any():
            trial = K.objective(gs, xs, mus, need, step, np.where(need, alpha, 0.0))
            ok = need & (trial <= phi0 - ARMIJO * alpha * mus * lam2)
            accepted = np.where(ok, trial, accepted)
            need = need & ~ok
            alpha = np.where(need, np.maximum(floor, 0.5 * alpha), alpha)
            need = need & (alpha > floor)
    xs = K.move(xs, step, np.where(moving, alpha, 0.0))
    return xs, np.where(moving, accepted, phi)


def _end_stage(K, st: PathState, b, lam2, tol, x, prev, best, target, rtol, shrink, max_iter,
               switch):
    """Graph ``b`` ended a centring run: extrapolate, stop, switch to tight, or plan the next
    stage (``st.mu_next``, ``st.predict``)."""
    centred = lam2 <= 1e-8
    mk = float(st.mu[b])
    if st.total[b] >= max_iter and not lam2 <= tol:
        st.end(b, MAX_ITER, f"{max_iter} Newton steps spent at mu={mk:.2e} "
                            f"(estimated error {st.err[b]:.2e})")
        return x, prev, best
    if target is not None:
        if mk <= target:
            if centred:
                st.err[b] = 0.0
                st.end(b, CONVERGED)
            else:
                st.end(b, MAX_ITER, f"not centred at mu={mk:.2e} (lambda^2/mu={lam2:.1e})")
            return x, prev, best
        nxt = max(target, mk * shrink)
    else:
        xb = K.take(x, [b])
        ok = bool(st.tight[b]) and centred
        if st.has_prev[b] and (centred or not st.tight[b]):
            extra = K.combine(xb, K.take(prev, [b]), shrink)
            if st.has_best[b]:
                src, ref = K.sources(extra)[0], K.sources(K.take(best, [b]))[0]
                e = float(np.abs(src - ref).max())
                st.err[b] = e
                scale = float(np.abs(src).max())
                if ok and st.prev_ok[b] and st.best_ok[b] and e <= rtol * scale:
                    st.end(b, CONVERGED)
                    return K.put(x, [b], extra), prev, best
                if not st.tight[b] and ((e <= switch * rtol * scale and e < 0.5 * st.err_loose[b])
                                        or mk <= SWITCH_MU):
                    st.tight[b] = True
                    st.has_prev[b] = st.has_best[b] = False
                    st.lam_prev[b] = math.inf  # a new centring run, tightly at the same mu
                    return x, prev, best
                st.err_loose[b] = e
            best = K.put(best, [b], extra)
            st.has_best[b], st.best_ok[b] = True, ok and st.prev_ok[b]
        if st.tight[b] and not centred:
            st.has_prev[b] = st.has_best[b] = False
        else:
            prev = K.put(prev, [b], xb)
            st.has_prev[b], st.prev_ok[b] = True, ok
        if mk < MU_MIN:
            st.end(b, MU_FLOOR, f"mu fell below {MU_MIN:.0e} before two extrapolations "
                                f"agreed (estimated error {st.err[b]:.2e})")
            return x, prev, best
        nxt = mk * shrink
    st.mu_next[b] = nxt
    st.predict[b] = True
    return x, prev, best


def _restore(K, g, x, st: PathState):
    """Infeasible-start Newton (Boyd & Vandenberghe Sec. 10.3) from interior, unbalanced flows.

    Each step is the Newton step of the barrier objective that also cancels the imbalance, cut
    to ``BOUNDARY`` of the largest step inside the bounds: the imbalance shrinks by ``1 -
    alpha`` and is gone after the first full step. Graphs still unbalanced (to ``RESTORED *
    max(1, F)``) after ``RESTORE_STEPS`` steps, or whose system cannot be factored, start from
    the kernels' feasible start instead. Steps count towards ``st.total``.
    """
    n = len(st.mu)
    running = list(range(n))
    failed: list[int] = []
    for _ in range(RESTORE_STEPS):
        imb, val = K.imbalance(g, x), K.values(x)
        running = [b for b in running if imb[b] > RESTORED * max(1.0, val[b])]
        if not running:
            break
        gs, xs = K.take_graph(g, running), K.take(x, running)
        try:
            step, _, _ = K.newton_step(gs, xs, st.mu[running], np.zeros(len(running), bool),
                                       [3] * len(running))
        except SingularSystem as exc:
            failed += [running[j] for j in exc.rows]
            running = [b for b in running if b not in failed]
            continue
        alpha = np.minimum(BOUNDARY * K.max_step(gs, xs, step), 1.0)
        x = K.put(x, running, K.move(xs, step, alpha))
        st.total[running] += 1
    imb, val = K.imbalance(g, x), K.values(x)
    unbalanced = {b for b in range(n) if not imb[b] <= RESTORED * max(1.0, val[b])}
    failed = sorted(set(failed) | unbalanced)
    if failed:
        x = K.put(x, failed, K.feasible_start(K.take_graph(g, failed)))
    return x
