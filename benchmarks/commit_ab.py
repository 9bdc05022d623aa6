"""``solve_flow`` of one commit against another, graph by graph: ``python benchmarks/commit_ab.py``.

    git worktree add /tmp/old 289ee53
    OMP_NUM_THREADS=1 python benchmarks/commit_ab.py --old /tmp/old/src

Every graph is solved once per version (default strategy, ``mu=None``), each in a fresh process
that imports gaflow from that version's ``src`` (``--old``; ``--new`` defaults to this checkout's),
old and new alternating graph by graph so that machine load hits both alike. Prints CPU seconds
of the solve (a warm-up solve of an 8-token corner first), steps, and the relative difference
of the two versions' attributions; with ``--repeat N`` each process solves its graph N times
and the least CPU time is shown (one cold solve per process is noisy: the same code's time
varies by more than 1.5 x from one process to the next on a shared machine). Graphs: the
attention-like 12 x t graphs of solver.py (seed 0, ``--synthetic`` per t) and the MiniLM AGF
graphs of solver_real.py (``--n`` per t).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
import numpy as np
import gaflow
from solver import attention_like
assert gaflow.__file__.startswith(sys.argv[1]), gaflow.__file__
kind, t, k, cache, out = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
repeat = int(sys.argv[8])
if kind == "attention-like":
    rng = np.random.default_rng(0)
    for _ in range(k + 1):
        caps = attention_like(rng, 12, t)
else:
    caps = np.load(cache)[f"{t}_{k}"]
gaflow.solve_flow(caps[:, :8, :8])
cpu = float("inf")
for _ in range(repeat):
    clock = time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = gaflow.solve_flow(caps)
    cpu = min(cpu, time.process_time() - clock)
np.save(out, sol.attributions)
print(json.dumps({"cpu": cpu, "steps": sol.iterations, "converged": bool(sol.converged),
                  "warnings": len(caught)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the A side's src folder")
    parser.add_argument("--new", default=str(HERE.parent / "src"), help="the B side's src")
    parser.add_argument("--tokens", default="128,512")
    parser.add_argument("--n", type=int, default=3, help="MiniLM graphs per t")
    parser.add_argument("--synthetic", type=int, default=2, help="attention-like graphs per t")
    parser.add_argument("--repeat", type=int, default=1,
                        help="solves per process (the least CPU time is shown)")
    parser.add_argument("--cache", default="/tmp/gaflow_real_graphs.npz")
    parser.add_argument("--scratch", default="/tmp/gaflow_commit_ab")
    args = parser.parse_args()
    import numpy as np

    sys.path.insert(0, str(HERE))
    from solver import machine
    from solver_real import real_graphs

    tokens = [int(v) for v in args.tokens.split(",")]
    real_graphs(tokens, args.n, Path(args.cache))  # builds the cache where missing
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    sets = []
    for t in tokens:
        sets.append(("attention-like", t, args.synthetic))
        sets.append(("MiniLM", t, args.n))
    print(f"Machine: {machine()}\n")
    print(f"Command: `python benchmarks/commit_ab.py --old {args.old} --tokens {args.tokens} "
          f"--n {args.n} --synthetic {args.synthetic}"
          + (f" --repeat {args.repeat}" if args.repeat > 1 else "") + "`\n")
    what = "least of --repeat " if args.repeat > 1 else ""
    print(f"| graphs (L × t) | old {what}CPU s (steps) | new {what}CPU s (steps) | "
          "old / new (medians) | "
          "max rel. diff |")
    print("|---|---|---|---:|---:|")
    for kind, t, count in sets:
        runs = {"old": [], "new": []}
        diff = 0.0
        for k in range(count):
            sols = {}
            for side in ("old", "new"):
                out = scratch / f"{side}_{kind}_{t}_{k}.npy"
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, getattr(args, side), str(HERE), kind, str(t),
                     str(k), args.cache, str(out), str(args.repeat)],
                    check=True, capture_output=True, text=True)
                runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                sols[side] = np.load(out)
            diff = max(diff, float(np.abs(sols["old"] - sols["new"]).max()
                                   / np.abs(sols["old"]).max()))
        cells = {side: ", ".join(f"{r['cpu']:.3f} ({r['steps']})" for r in rs)
                 for side, rs in runs.items()}
        ratio = (statistics.median(r["cpu"] for r in runs["old"])
                 / statistics.median(r["cpu"] for r in runs["new"]))
        layers = 12 if kind == "attention-like" else 6
        print(f"| {kind} {layers} × {t} | {cells['old']} | {cells['new']} | {ratio:.2f} | "
              f"{diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
