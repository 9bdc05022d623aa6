"""A/B of face.py's centring kernels (``_terms``, ``step``, ``_max_step``, ``_objective``): those
of an older commit against the current ones, in one process, interleaved graph by graph.

    OMP_NUM_THREADS=1 GAFLOW_DATA=../shared/data python benchmarks/face_kernels_ab.py --old 0a79553

Median CPU seconds of ``solve_flow(strategy="face")`` (one BLAS thread) on two attention-like
12 x t graphs of solver.py and two MiniLM AGF graphs of solver_real.py per t, each solved twice
per version; the attributions of the two versions are compared.
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
from solver import attention_like  # noqa: E402
from solver_real import real_graphs  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from gaflow import solve_flow  # noqa: E402
from gaflow.solvers import face  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--old", required=True, help="the commit whose kernels are the A side")
parser.add_argument("--cache", default="/tmp/gaflow_real_graphs.npz")
args = parser.parse_args()
src = subprocess.run(["git", "show", f"{args.old}:src/gaflow/solvers/face.py"], check=True,
                     capture_output=True, text=True).stdout
names = ["_terms", "step", "_max_step", "_objective"]
old_ns = dict(face.__dict__)
for n in names:
    m = re.search(rf"^def {n}\(.*?(?=^def |^class |^@dataclass|\Z)", src, re.S | re.M)
    exec(m.group(0), old_ns)
OLD = {n: old_ns[n] for n in names}
NEW = {n: getattr(face, n) for n in names}

def use(fns):
    for n, f in fns.items():
        setattr(face, n, f)

sets = {}
for t in (128, 512):
    sets[f"attention-like 12x{t}"] = [attention_like(np.random.default_rng(seed), 12, t)
                                      for seed in range(2)]
real = real_graphs([128, 512], 2, Path(args.cache))
for t, gs in real.items():
    sets[f"MiniLM 6x{t}"] = gs
print("| graphs (L x t) | steps old / new | old CPU s | new CPU s | old / new | max rel. diff |")
print("|---|---:|---:|---:|---:|---:|")
with threadpool_limits(1, "blas"):
    for name, graphs in sets.items():
        times = {"old": [], "new": []}
        steps = {"old": [], "new": []}
        diffs = []
        for caps in graphs:
            sols = {}
            for _rep in range(2):
                for label, fns in (("old", OLD), ("new", NEW)):
                    use(fns)
                    t0 = time.process_time()
                    sol = solve_flow(caps, strategy="face")
                    times[label].append(time.process_time() - t0)
                    steps[label].append(sol.iterations)
                    sols[label] = sol
                    assert sol.converged and sol.face
            a, b = sols["old"].attributions, sols["new"].attributions
            diffs.append(np.abs(a - b).max() / np.abs(a).max())
        t_old, t_new = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"| {name} | {statistics.median(steps['old'])} / {statistics.median(steps['new'])} "
              f"| {t_old:.3f} | {t_new:.3f} | {t_old / t_new:.2f} | {max(diffs):.1e} |",
              flush=True)
use(NEW)
