"""Does every central-flow solve of the zoo's explanations converge? (zoo_convergence.py)

Issue 16, item 3: every zoo model explains the first ``--n`` SST-2 dev sentences with each
central-flow method (``agf``, ``af``, ``gf``: the ones that call ``solve_flow``), with
:class:`gaflow.ConvergenceWarning` turned into an error. Counted per model and method: the
explanations, the solves whose optimal face was certified from the maximum flow
(``face.from_max_flow``, the default strategy) and those that fell back to the path, and the
convergence failures (expected: 0). Needs ``GAFLOW_DATA``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from solver import machine  # noqa: E402

import gaflow  # noqa: E402
from gaflow.data import load_dataset  # noqa: E402
from gaflow.errors import ConvergenceWarning  # noqa: E402
from gaflow.models.zoo import RECIPES  # noqa: E402
from gaflow.solvers import face, maxflow  # noqa: E402


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--models", default=",".join(RECIPES))
    parser.add_argument("--methods", default="agf,af,gf")
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = load_dataset("sst2", "dev").texts[: args.n]
    counts = {"certified": 0, "fallback": 0}
    real = face.from_max_flow

    def counted(*a, **k):
        res = real(*a, **k)
        counts["certified" if res.x is not None else "fallback"] += 1
        return res

    face.from_max_flow = counted
    print(f"Machine: {machine()}; max-flow engine {maxflow.engine()}\n")
    print(f"Command: `python benchmarks/zoo_convergence.py --n {args.n} --models {args.models} "
          f"--methods {args.methods}`\n")
    print("| model | method | explanations | face certified | fell back to the path | "
          "not converged | s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    total_failed = 0
    for name in args.models.split(","):
        model, tok = gaflow.load_model(name)
        for method in args.methods.split(","):
            counts.update(certified=0, fallback=0)
            failed, done = 0, 0
            clock = time.perf_counter()
            for text in texts:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", ConvergenceWarning)
                    try:
                        gaflow.explain(model, tok, text, method=method)
                    except ConvergenceWarning as exc:
                        failed += 1
                        print(f"  not converged: {name} {method} {text[:60]!r}: {exc}",
                              flush=True)
                done += 1
            total_failed += failed
            print(f"| {name} | {method} | {done} | {counts['certified']} | {counts['fallback']} "
                  f"| {failed} | {time.perf_counter() - clock:.1f} |", flush=True)
    print(f"\nnot converged in all: {total_failed}")


if __name__ == "__main__":
    main()
