"""Candidates for a cheaper face centring, measured: ``python benchmarks/face_candidates.py``.

Each candidate runs on the same certified face of every graph (one max flow per graph, the engine
of ``GAFLOW_MAXFLOW``) next to what ``strategy="face"`` does (the centring from
:func:`gaflow.solvers.face.max_flow_start`). Steps are factorisations of the node system; CPU
seconds are those of the centring alone, one BLAS thread. Graphs: the MiniLM AGF graphs of
solver_real.py (``--n`` per t) and ``--synthetic`` attention-like 12 x t graphs (seed 0).

``--candidate starts``: other starts of the same centring:

* ``clipped``: :func:`~gaflow.solvers.face.max_flow_start`, free flows clipped into
  ``[u/4, 3u/4]`` (the first start of ``strategy="face"``);
* ``scaled``: :func:`~gaflow.solvers.face.scaled_start` (the retry where the first fails);
* ``lift k f``: the max flow plus the clip's lift ``max(u/4 - f, 0)`` scaled per node so that
  the lift into (out of) a node is at most ``k`` times the max flow's throughput there, and at
  least ``f`` of it.

``--candidate float32``: the block factorisation in float32 (SciPy's ``s`` BLAS/LAPACK kernels
patched in for newton.py's ``d`` ones; inputs cast, results cast back) with the centring's
float64 refinement passes allowed up to 12 (it stops once ``x + dx`` conserves to 1e-12 F):
steps, refinement sweeps per step, CPU seconds, against float64.

``--candidate damped32``: the damped steps of the infeasible phase with a float32 block
factor, refined in float64 until ``x + dx`` leaves ``face.LOOSE`` of the imbalance (kept with
0.01; the columns: every factor float64 (``LOOSE = 0``), 0.01, 0.1), the last factor of that
phase the preconditioner of the first full step's solve. Steps (float32 factorisations of all
factorisations), CPU seconds of the centring, and the largest relative difference of the
centre from the float64 one.

``--candidate primal-dual``: primal-dual Newton on the centring's optimality conditions
(``f z_l = 1``, ``(u - f) z_u = 1``, ``z_u - z_l + B^T w = 0``; the same node system with
conductances ``1 / (z_l / f + z_u / (u - f))``, separate primal and dual step lengths at 0.995
of the boundary) from the clipped start with ``z = 1 / slack``, until the point conserves flow;
then the primal centring of face.py to its certificate. Steps of both parts.

``--candidate boundary``: the centring with its steps cut at other fractions ``face.BOUNDARY`` of
the largest step inside the bounds (0.995 before, 0.9 kept).

``--candidate reuse``: the centring with every step factored (``face.REUSE_DEC = -1``) against
the kept one, where a step after a full step from a conserving point with lambda^2 <= 0.1 solves
by conjugate gradients preconditioned by the last factor (:class:`gaflow.solvers.face.Reuse`):
Newton steps, factorisations, CPU seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from solver import attention_like, machine  # noqa: E402
from solver_real import real_graphs  # noqa: E402

from gaflow.flow.graph import build_graph  # noqa: E402
from gaflow.solvers import face, maxflow, newton  # noqa: E402
from gaflow.solvers.api import flow_bound, flow_units  # noqa: E402
from gaflow.solvers.newton import FlowState  # noqa: E402


def centre(graph, fc, x0):
    clock = time.process_time()
    res = face.centre(graph, fc, x0, max_steps=face.COMBINATORIAL_STEPS, patience=face.PATIENCE)
    return res, time.process_time() - clock


def cell(res, took, extra=""):
    steps = f"{res.steps}" if res.ok else f"not certified ({res.steps})"
    return f"{steps}{extra} / {took:.2f} s"


# ------------------------------------------------------------------------------ starts

def lift_start(graph, fc, arcs, most: float, least: float) -> FlowState:
    u, f = graph.caps, arcs.layers
    n_layers, t, _ = u.shape
    lift = np.where(fc.free, np.maximum(face.INSIDE * u - f, 0.0), 0.0)
    through = np.zeros((n_layers + 1, t))
    through[0] = arcs.source
    through[1:] = f.sum(axis=2)
    into, out = lift.sum(axis=2), lift.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_in = np.where(into > 0, np.minimum(1.0, most * through[1:] / into), 1.0)
        s_out = np.where(out > 0, np.minimum(1.0, most * through[:-1] / out), 1.0)
    scale = np.maximum(np.minimum(s_in[:, :, None], s_out[:, None, :]), least)
    lifted = np.minimum(f + scale * lift, (1 - face.INSIDE) * u)
    return face.clipped_start(graph, fc, arcs, lifted, lifted)  # clipped to itself


STARTS = {
    "clipped": face.max_flow_start,
    "scaled": face.scaled_start,
    "lift 1 0.01": lambda g, fc, a: lift_start(g, fc, a, 1.0, 0.01),
    "lift 1 0.1": lambda g, fc, a: lift_start(g, fc, a, 1.0, 0.1),
    "lift 2 0.01": lambda g, fc, a: lift_start(g, fc, a, 2.0, 0.01),
}


def starts(graph, fc, arcs):
    return [cell(*centre(graph, fc, start(graph, fc, arcs))) for start in STARTS.values()]


# ------------------------------------------------------------------------------ float32

def _float32_kernels():
    from scipy.linalg import blas, lapack

    def trsm(chol, b, trans=False):
        c = chol if chol.dtype == np.float32 else chol.astype(np.float32)
        if b.ndim == 1:
            return blas.strsv(c, b.astype(np.float32), lower=0, trans=int(not trans)).astype(
                np.float64)
        return blas.strsm(1.0, c, np.asfortranarray(b, dtype=np.float32), lower=0,
                          trans_a=int(not trans))

    def gemv(a, x, trans=False):
        if a.dtype == np.float32:
            return blas.sgemv(1.0, a, x.astype(np.float32), trans=int(trans)).astype(np.float64)
        return blas.dgemv(1.0, a, x, trans=int(trans))

    def gram_upper(w):
        return blas.ssyrk(1.0, w.astype(np.float32, copy=False), trans=1, lower=0).astype(
            np.float64)

    def cholesky(a):
        chol, info = lapack.spotrf(np.asfortranarray(a, dtype=np.float32), lower=0, clean=0,
                                   overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"spotrf info={info}")
        return chol

    return {"_trsm": trsm, "_gemv": gemv, "_gram_upper": gram_upper, "_cholesky": cholesky}


def float32(graph, fc, arcs):
    out = []
    original = {n: getattr(newton, n) for n in ("_trsm", "_gemv", "_gram_upper", "_cholesky")}
    step, sweep = face.step, face._sweep
    for kernels in (original, _float32_kernels()):
        sweeps: list[int] = []

        def counted(*a, sweeps=sweeps, **k):
            sweeps[-1] += 1
            return sweep(*a, **k)

        def long_step(g, f, x, passes=3, reuse=None, sweeps=sweeps):
            sweeps.append(0)
            return step(g, f, x, 12, reuse)

        for n, fn in kernels.items():
            setattr(newton, n, fn)
        face._sweep, face.step = counted, long_step
        try:
            res, took = centre(graph, fc, face.max_flow_start(graph, fc, arcs))
        finally:
            for n, fn in original.items():
                setattr(newton, n, fn)
            face._sweep, face.step = sweep, step
        out.append(cell(res, took, f", {np.mean(sweeps):.1f} sweeps per step"))
    return out


def damped32(graph, fc, arcs):
    out, first = [], None
    kept = face.LOOSE
    try:
        for loose in DAMPED_LOOSE:
            face.LOOSE = loose
            res, took = centre(graph, fc, face.max_flow_start(graph, fc, arcs))
            if first is None:
                first = res.x.layers
            diff = float(np.abs(res.x.layers - first).max() / np.abs(first).max())
            out.append(cell(res, took, f" ({res.single} of {res.factored}; {diff:.0e})"))
    finally:
        face.LOOSE = kept
    return out


DAMPED_LOOSE = (0.0, 0.01, 0.1)


# ------------------------------------------------------------------------------ primal-dual

def primal_dual(graph, fc, arcs, max_pd: int = 40):
    x = face.snap(graph, fc, face.max_flow_start(graph, fc, arcs))
    base, took0 = centre(graph, fc, x)
    u, free = graph.caps, fc.free
    z = {"l": np.where(free, 1.0 / np.where(free, x.layers, 1.0), 0.0),
         "u": np.where(free, 1.0 / np.where(free, u - x.layers, 1.0), 0.0),
         "s": np.where(fc.source, 1.0 / np.where(fc.source, x.source, 1.0), 1.0),
         "z": np.where(fc.sink, 1.0 / np.where(fc.sink, x.sink, 1.0), 1.0)}

    def terms(graph, fc, x, blocks, *first):  # face._terms with the duals' conductances
        f = np.where(free, x.layers, 0.5)
        slack = np.where(free, u - x.layers, 0.5)
        d = np.where(free, 1.0 / (z["l"] / f + z["u"] / slack), 0.0)
        g = np.where(free, 1.0 / slack - 1.0 / f, 0.0)
        s = np.where(fc.source, x.source, 1.0)
        k = np.where(fc.sink, x.sink, 1.0)
        return (g, d, d.sum(axis=1), d.sum(axis=2), np.where(fc.source, -1.0 / s, 0.0),
                np.where(fc.source, s / z["s"], 0.0), np.where(fc.sink, -1.0 / k, 0.0),
                np.where(fc.sink, k / z["z"], 0.0))

    def dual_step(zv, slack, ds, sign, mask):
        return np.where(mask, 1.0 / slack - zv + sign * zv * ds / slack, 0.0)

    clock = time.process_time()
    real = face._terms
    face._terms = terms
    pd_steps = 0
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            while pd_steps < max_pd and face.imbalance(graph, fc, x) > (
                    face.FEASIBLE * x.source.sum()):
                dx, _ = face.step(graph, fc, x)
                pd_steps += 1
                f = np.where(free, x.layers, 1.0)
                slack = np.where(free, u - x.layers, 1.0)
                src = np.where(fc.source, x.source, 1.0)
                snk = np.where(fc.sink, x.sink, 1.0)
                dz = {"l": dual_step(z["l"], f, dx.layers, -1.0, free),
                      "u": dual_step(z["u"], slack, dx.layers, 1.0, free),
                      "s": dual_step(z["s"], src, dx.source, -1.0, fc.source),
                      "z": dual_step(z["z"], snk, dx.sink, -1.0, fc.sink)}
                a_p = min(1.0, face.BOUNDARY * face._max_step(graph, fc, x, dx))
                a_d = 1.0
                for n, d in dz.items():
                    neg = d < 0
                    if neg.any():
                        a_d = min(a_d, face.BOUNDARY * float((z[n][neg] / -d[neg]).min()))
                x = face._move(x, dx, a_p)
                for n in z:
                    z[n] = z[n] + a_d * dz[n]
    finally:
        face._terms = real
    res, _ = centre(graph, fc, x)
    took = time.process_time() - clock
    both = f"{pd_steps + res.steps} (primal-dual {pd_steps} + primal {res.steps})"
    return [cell(base, took0), f"{both if res.ok else 'not certified: ' + both} / {took:.2f} s"]


# ------------------------------------------------------------------ step length and reuse

BOUNDS = (0.995, 0.95, 0.9, 0.85)


def boundary(graph, fc, arcs):
    out = []
    kept = face.BOUNDARY
    try:
        for b in BOUNDS:
            face.BOUNDARY = b
            out.append(cell(*centre(graph, fc, face.max_flow_start(graph, fc, arcs))))
    finally:
        face.BOUNDARY = kept
    return out


def reuse(graph, fc, arcs):
    out = []
    kept = face.REUSE_DEC
    try:
        for dec in (-1.0, kept):
            face.REUSE_DEC = dec
            res, took = centre(graph, fc, face.max_flow_start(graph, fc, arcs))
            out.append(cell(res, took, f" ({res.factored} factorisations)"))
    finally:
        face.REUSE_DEC = kept
    return out


CANDIDATES = {
    "starts": (starts, list(STARTS)),
    "float32": (float32, ["float64 factorisation", "float32 factorisation"]),
    "damped32": (damped32, [f"LOOSE {v}" for v in DAMPED_LOOSE]),
    "primal-dual": (primal_dual, ["primal centring (face.py)", "primal-dual, then primal"]),
    "boundary": (boundary, [f"BOUNDARY {b}" for b in BOUNDS]),
    "reuse": (reuse, ["every step factored", "last factor reused near the centre"]),
}


def main() -> None:
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", choices=list(CANDIDATES), required=True)
    parser.add_argument("--tokens", default="128,512")
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/gaflow_real_graphs.npz")
    args = parser.parse_args()
    tokens = [int(v) for v in args.tokens.split(",")]
    real = real_graphs(tokens, args.n, Path(args.cache))
    graphs = []
    for t in tokens:
        graphs += [(f"MiniLM {g.shape[0]}x{t} #{k}", g) for k, g in enumerate(real[t])]
        rng = np.random.default_rng(0)
        graphs += [(f"attention-like 12x{t} #{k}", attention_like(rng, 12, t))
                   for k in range(args.synthetic)]
    run, columns = CANDIDATES[args.candidate]
    print(f"Machine: {machine()}; max-flow engine {maxflow.engine()}\n")
    print(f"Command: `python benchmarks/face_candidates.py --candidate {args.candidate} --tokens "
          f"{args.tokens} --n {args.n} --synthetic {args.synthetic}`\n")
    print("| graph | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    with threadpool_limits(1, "blas"):
        for name, caps in graphs:
            graph = flow_units(build_graph(caps))
            arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
            fc = face._classify_arcs(graph, arcs)
            if fc is None:
                arcs = maxflow.refine(graph, arcs)
                fc = face._classify_arcs(graph, arcs)
            print(f"| {name} | " + " | ".join(run(graph, fc, arcs)) + " |", flush=True)


if __name__ == "__main__":
    main()
