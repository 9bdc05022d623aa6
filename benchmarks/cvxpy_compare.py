"""gaflow's structured Newton solver against the paper's route (CVXPY) and SciPy's exact max-flow.

    python benchmarks/cvxpy_compare.py [--tokens 8,12,16,32] [--layers 6,12] [--mu 1e-3]
                                       [--timeout 60]

On the same random attention-like capacities, the barrier problem with the same explicit ``mu``
(relative to the largest capacity) is solved by

* gaflow (``solve_flow(caps, mu=mu)``; also the central flow ``mu=None`` for its time),
* CVXPY with Clarabel and with SCS (exponential-cone form of ``log``; each solve runs in a child
  process with a wall-clock time-out, and a time-out or solver failure is recorded as such),
* SciPy's exact ``maximum_flow`` on integer capacities (round(cap * 1e6)); its flow is one of
  many maximum flows, so only its value and time are shown, for context.

Accuracy: ``max|phi_cvxpy - phi_gaflow| / max|phi_gaflow|``. CVXPY time includes building the
problem (``problem.solve`` compiles it), as a user of that route pays it.
Writes ``benchmarks/results/cvxpy_compare.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import maximum_flow

sys.path.insert(0, str(Path(__file__).parent))

from solver import attention_like, machine  # noqa: E402

import gaflow  # noqa: E402


def edges_of(caps: np.ndarray):
    """Edge list of the full layered graph (every capacity is > 0 here: nothing to prune)."""
    n_layers, t, _ = caps.shape
    assert (caps > 0).all()
    layer, head, tail = np.meshgrid(np.arange(n_layers), np.arange(t), np.arange(t), indexing="ij")
    # node numbering: (l, i) -> l * t + i; z = (L + 1) * t; s is grounded (no row)
    tails = (layer * t + tail).ravel()
    heads = ((layer + 1) * t + head).ravel()
    return tails, heads, caps.ravel()


def cvxpy_solve(caps: np.ndarray, mu: float, solver: str, queue) -> None:
    import cvxpy as cp

    start = time.perf_counter()
    try:
        n_layers, t, _ = caps.shape
        u = caps / caps.max()
        tails, heads, cap = edges_of(u)
        n_nodes = (n_layers + 1) * t + 1
        z = n_nodes - 1
        m = len(cap)
        # columns: layer edges, source edges s -> (0, j), sink edges (L, i) -> z, return z -> s
        rows = np.concatenate([tails, heads, np.arange(t), n_layers * t + np.arange(t),
                               np.full(t, z), [z]])
        cols = np.concatenate([np.arange(m), np.arange(m), m + np.arange(t), m + t + np.arange(t),
                               m + t + np.arange(t), [m + 2 * t]])
        vals = np.concatenate([np.ones(m), -np.ones(m), -np.ones(t), np.ones(t), -np.ones(t), [1]])
        inc = coo_matrix((vals, (rows, cols)), shape=(n_nodes, m + 2 * t + 1)).tocsr()
        f = cp.Variable(m + 2 * t + 1)
        objective = -f[-1] - mu * cp.sum(cp.log(f)) - mu * cp.sum(cp.log(cap - f[:m]))
        problem = cp.Problem(cp.Minimize(objective), [inc @ f == 0])
        problem.solve(solver=solver)  # the solver's default tolerances, as a user would run it
        if f.value is None:
            queue.put(("failed: " + str(problem.status), None, time.perf_counter() - start))
            return
        phi = np.asarray(f.value[m : m + t]) * caps.max()
        queue.put((str(problem.status), phi, time.perf_counter() - start))
    except Exception as exc:  # a solver error is a result to record, not a crash
        queue.put((f"error: {type(exc).__name__}: {exc}"[:80], None, time.perf_counter() - start))


def with_timeout(caps, mu, solver, timeout):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=cvxpy_solve, args=(caps, mu, solver, queue))
    start = time.perf_counter()
    proc.start()
    try:
        status, phi, seconds = queue.get(timeout=timeout)
    except Exception:
        proc.kill()
        proc.join()
        return f"time-out (> {timeout:.0f} s)", None, time.perf_counter() - start
    proc.join()
    return status, phi, seconds


def scipy_max_flow(caps: np.ndarray):
    n_layers, t, _ = caps.shape
    u = np.round(caps / caps.max() * 1e6).astype(np.int64)
    tails, heads, cap = edges_of(np.maximum(u, 1).astype(float))
    s, z = (n_layers + 1) * t, (n_layers + 1) * t + 1
    big = int(u.sum()) + 1
    rows = np.concatenate([tails + 0, np.full(t, s), n_layers * t + np.arange(t)])
    cols = np.concatenate([heads + 0, np.arange(t), np.full(t, z)])
    vals = np.concatenate([u.ravel(), np.full(t, big), np.full(t, big)]).astype(np.int32)
    graph = csr_matrix((vals, (rows, cols)), shape=(z + 1, z + 1))
    start = time.perf_counter()
    res = maximum_flow(graph, s, z)
    return res.flow_value / 1e6 * caps.max(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="8,12,16,32")
    parser.add_argument("--layers", default="6,12")
    parser.add_argument("--mu", type=float, default=1e-3)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "cvxpy_compare.md"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n_layers in [int(v) for v in args.layers.split(",")]:
        for t in [int(v) for v in args.tokens.split(",")]:
            caps = attention_like(rng, n_layers, t)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                ours = gaflow.solve_flow(caps, mu=args.mu)
                times.append(time.perf_counter() - start)
            t_ours = statistics.median(times)
            start = time.perf_counter()
            central = gaflow.solve_flow(caps)
            t_central = time.perf_counter() - start
            row = dict(L=n_layers, t=t, edges=n_layers * t * t, ours=t_ours,
                       central=t_central, value=central.value)
            for solver in ("CLARABEL", "SCS"):
                status, phi, seconds = with_timeout(caps, args.mu, solver, args.timeout)
                err = (None if phi is None else float(np.abs(phi - ours.attributions).max()
                                                      / np.abs(ours.attributions).max()))
                row[solver] = (status, seconds, err)
            row["maxflow"] = scipy_max_flow(caps)
            rows.append(row)
            print(row, flush=True)

    def solver_cells(r, name):
        status, seconds, err = r[name]
        if err is None:
            return f"{status} | — | — | —"
        return (f"{status} | {seconds:.2f} | {seconds / r['ours']:.0f}× | {err:.1e}")

    lines = [
        "# gaflow vs CVXPY (Clarabel, SCS) and SciPy max-flow", "",
        f"Machine: {machine()}", "",
        f"Command: `python benchmarks/cvxpy_compare.py --tokens {args.tokens} --layers "
        f"{args.layers} --mu {args.mu:g} --timeout {args.timeout:g}`", "",
        f"Same barrier problem, mu = {args.mu:g} relative to the largest capacity. gaflow time "
        f"= median of {args.repeat}; CVXPY time = one solve in a child process, problem build "
        "included, default solver tolerances; `speed-up` = CVXPY time / gaflow time; "
        "`rel. diff` = max|Δφ| / max|φ| "
        "against gaflow. `central` = gaflow's default `mu=None` (the mu → 0 limit) for "
        "reference. SciPy's `maximum_flow` (integer capacities ×1e6) gives one of many maximum "
        "flows: its value (against gaflow's central F) and time only.", "",
        "| L | t | edges | gaflow s | central s | Clarabel status | s | speed-up | rel. diff | "
        "SCS status | s | speed-up | rel. diff | SciPy max-flow s | its value / gaflow F |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mf_value, mf_time = r["maxflow"]
        lines.append(
            f"| {r['L']} | {r['t']} | {r['edges']} | {r['ours']:.4f} | {r['central']:.3f} | "
            f"{solver_cells(r, 'CLARABEL')} | {solver_cells(r, 'SCS')} | {mf_time:.4f} | "
            f"{mf_value / r['value']:.4f} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
