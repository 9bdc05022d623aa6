"""Solver timing: ``python benchmarks/solver.py [--sizes 6x32,12x64,...] [--repeat 3]``.

Capacities are random attention-like matrices (rows of a softmax of Gaussian logits, as AF
produces). Writes ``benchmarks/results/solver.md`` with the machine description.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

import gaflow


def attention_like(rng: np.random.Generator, n_layers: int, t: int) -> np.ndarray:
    logits = rng.normal(scale=2.0, size=(n_layers, t, t))
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, gaflow {gaflow.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="6x32,12x64,12x128,12x256")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "solver.md"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for spec in args.sizes.split(","):
        n_layers, t = (int(v) for v in spec.split("x"))
        times, iters = [], []
        for _ in range(args.repeat):
            caps = attention_like(rng, n_layers, t)
            start = time.perf_counter()
            sol = gaflow.solve_flow(caps)
            times.append(time.perf_counter() - start)
            iters.append(sol.iterations)
            assert sol.converged
        rows.append((n_layers, t, float(np.median(times)), min(times), max(times),
                     int(np.median(iters))))
        print(f"L={n_layers:3d} t={t:4d}  median {rows[-1][2]:.3f} s  iterations {rows[-1][5]}",
              flush=True)
    lines = [
        "# Solver timing (central maximum flow, `mu=None`, rtol 1e-6)",
        "",
        f"Machine: {machine()}",
        "",
        f"Command: `python benchmarks/solver.py --sizes {args.sizes} --repeat {args.repeat}`",
        "",
        "| layers L | tokens t | median s | min s | max s | Newton steps |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]} |" for r in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
