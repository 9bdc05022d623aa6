"""Solver timing and scaling: ``python benchmarks/solver.py [--tokens 8,...,512] [--layers 6,12]``.

Capacities are random attention-like matrices (rows of a softmax of Gaussian logits with scale 2,
as AF produces). For every (L, t) the central flow (``mu=None``, rtol 1e-6) is solved with the
NumPy backend and, up to ``--torch-max`` tokens, with the torch backend on the CPU (and on CUDA
when torch sees a GPU); the two must agree to 1e-6 (the accuracy contract: torch follows the
path, NumPy by default the path ended at a certified optimal face). Also measured: time
against the number of layers at ``--layer-scan-t`` tokens, a batch of 16 graphs (NumPy one by
one vs torch in lock step), the split of one solve at the largest size into block
factorisations, triangular solves and the rest, and the peak memory the NumPy path allocates
(tracemalloc) against ``8 L t^2`` bytes.

Writes ``benchmarks/results/solver.md`` and ``solver_scaling.png`` (log-log, fitted exponents).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

import gaflow

RESULTS = Path(__file__).parent / "results"
KEEP = "<!-- kept by solver.py -->"


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


def run(caps, backend: str, repeat: int, device=None):
    times, sol = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        sol = gaflow.solve_flow(caps, backend=backend, device=device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), sol


def time_split(caps) -> dict:
    """One NumPy solve with its block factorisations and triangular solves timed apart.

    ``newton.factor`` and ``newton._Factor.solve`` are wrapped for the run; what is left of the
    total is the elementwise work over the (L, t, t) edge arrays and the Python around it.
    """
    from gaflow.solvers import newton

    spent = {"factor": [0.0, 0], "solve": [0.0, 0]}

    def timing(name, fn):
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name][0] += time.perf_counter() - start
            spent[name][1] += 1
            return out
        return wrapped

    from gaflow.solvers import face, primal_dual

    factor, solve = newton.factor, newton._Factor.solve
    wrapped = timing("factor", factor)
    newton.factor, newton._Factor.solve = wrapped, timing("solve", solve)
    face.factor = primal_dual.factor = wrapped  # the modules that imported it by name
    try:
        start = time.perf_counter()
        sol = gaflow.solve_flow(caps)
        total = time.perf_counter() - start
    finally:
        newton.factor, newton._Factor.solve = factor, solve
        face.factor = primal_dual.factor = factor
    return dict(total=total, steps=sol.iterations, factor=spent["factor"][0],
                n_factor=spent["factor"][1], solve=spent["solve"][0], n_solve=spent["solve"][1])


def fit_exponent(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", default="8,16,32,64,128,256,512")
    parser.add_argument("--layers", default="6,12")
    parser.add_argument("--repeat", type=int, default=3, help="repeats for t <= 128 (else 1)")
    parser.add_argument("--torch-max", type=int, default=256)
    parser.add_argument("--layer-scan", default="2,4,6,12,24")
    parser.add_argument("--layer-scan-t", type=int, default=64)
    parser.add_argument("--fit-from", type=int, default=64, help="fit exponents on t >= this")
    parser.add_argument("--out", default=str(RESULTS / "solver.md"))
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    rng = np.random.default_rng(0)
    tokens = [int(v) for v in args.tokens.split(",")]
    layer_list = [int(v) for v in args.layers.split(",")]
    rows = []
    for n_layers in layer_list:
        for t in tokens:
            caps = attention_like(rng, n_layers, t)
            rep = args.repeat if t <= 128 else 1
            t_np, sol = run(caps, "numpy", rep)
            assert sol.converged
            row = dict(L=n_layers, t=t, numpy=t_np, steps=sol.iterations, torch=None, cuda=None)
            if t <= args.torch_max:
                row["torch"], tsol = run(caps, "torch", rep)
                diff = np.abs(tsol.attributions - sol.attributions).max()
                assert diff <= 1e-6 * np.abs(sol.attributions).max(), diff
            if cuda:
                run(caps, "torch", 1, "cuda")  # warm-up
                row["cuda"], csol = run(caps, "torch", rep, "cuda")
                row["cuda_diff"] = float(np.abs(csol.attributions - sol.attributions).max()
                                         / np.abs(sol.attributions).max())
            rows.append(row)
            print(row, flush=True)

    layer_rows = []
    for n_layers in [int(v) for v in args.layer_scan.split(",")]:
        caps = attention_like(rng, n_layers, args.layer_scan_t)
        t_np, sol = run(caps, "numpy", args.repeat)
        layer_rows.append(dict(L=n_layers, t=args.layer_scan_t, numpy=t_np, steps=sol.iterations))
        print(layer_rows[-1], flush=True)

    batch = [attention_like(rng, 12, int(t)) for t in rng.integers(32, 97, size=16)]
    t0 = time.perf_counter()
    ref = gaflow.solve_flow(batch)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = gaflow.solve_flow(batch, backend="torch")
    t_batch = time.perf_counter() - t0
    batch_diff = max(float(np.abs(a.attributions - b.attributions).max()
                           / np.abs(b.attributions).max()) for a, b in zip(got, ref, strict=True))
    t_cuda_batch = None
    if cuda:
        gaflow.solve_flow(batch, backend="torch", device="cuda")
        t0 = time.perf_counter()
        gaflow.solve_flow(batch, backend="torch", device="cuda")
        t_cuda_batch = time.perf_counter() - t0

    split_lt = (max(layer_list), max(tokens))
    split = time_split(attention_like(rng, *split_lt))
    print(split, flush=True)

    memory = []
    for n_layers, t in ((6, 128), (12, 128), (24, 128), (12, 256), (12, 512)):
        if t > max(tokens):
            continue
        caps = attention_like(rng, n_layers, t)
        tracemalloc.start()
        gaflow.solve_flow(caps)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        memory.append((n_layers, t, peak / 2**20, 8 * n_layers * t * t / 2**20))
        print(memory[-1], flush=True)

    plot = Path(args.out).with_name("solver_scaling.png")
    exponents = {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for n_layers in layer_list:
        pts = [r for r in rows if r["L"] == n_layers]
        ts = [r["t"] for r in pts]
        for key, style in (("numpy", "o-"), ("torch", "s--"), ("cuda", "^:")):
            sub = [(r["t"], r[key]) for r in pts if r[key] is not None]
            if not sub:
                continue
            x, y = zip(*sub, strict=True)
            ax.loglog(x, y, style, label=f"L={n_layers} {key}")
        big = [(r["t"], r["numpy"], r["steps"]) for r in pts if r["t"] >= args.fit_from]
        if len(big) >= 2:
            x, y, s = zip(*big, strict=True)
            exponents[n_layers] = (fit_exponent(x, y),
                                   fit_exponent(x, [a / b for a, b in zip(y, s, strict=True)]),
                                   fit_exponent(x, s))
        ax2.semilogx(ts, [r["steps"] for r in pts], "o-", label=f"L={n_layers}")
    ax.axhline(3.0, color="grey", lw=0.8)
    ax.set_xlabel("tokens t")
    ax.set_ylabel("seconds (central flow, rtol 1e-6)")
    ax.set_title("solve time vs tokens")
    ax.legend(fontsize=8)
    ax2.set_xlabel("tokens t")
    ax2.set_ylabel("Newton steps")
    ax2.set_title("Newton steps vs tokens")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot, dpi=110)

    def cell(v):
        return "—" if v is None else f"{v:.3f}"

    lines = [
        "# Solver timing and scaling (central maximum flow, `mu=None`, rtol 1e-6, float64)", "",
        f"Machine: {machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
        + (f", CUDA: {torch.cuda.get_device_name(0)}" if cuda else ", no CUDA device"), "",
        f"Command: `python benchmarks/solver.py --tokens {args.tokens} --layers {args.layers} "
        f"--repeat {args.repeat} --torch-max {args.torch_max}`", "",
        "Capacities: random attention-like rows (softmax of N(0, 2²) logits). Median of "
        f"{args.repeat} runs for t ≤ 128, one run above. `torch` = the batched backend on the "
        "CPU with a batch of one (the path); it agrees with NumPy (by default the path ended "
        "at a certified optimal face) to 1e-6 (checked by the script).", "",
        "| L | t | NumPy s | torch CPU s | CUDA s | Newton steps | NumPy ms / step |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['L']} | {r['t']} | {r['numpy']:.3f} | {cell(r['torch'])} | "
                     f"{cell(r['cuda'])} | {r['steps']} | {1e3 * r['numpy'] / r['steps']:.1f} |")
    lines += ["", f"Fitted exponents on t ≥ {args.fit_from} (log-log least squares, NumPy):", "",
              "| L | time ∝ t^a | time per step ∝ t^a | steps ∝ t^a |", "|---:|---:|---:|---:|"]
    for n_layers, (a, b, c) in exponents.items():
        lines.append(f"| {n_layers} | {a:.2f} | {b:.2f} | {c:.2f} |")
    lines += ["", f"Time against layers at t = {args.layer_scan_t} (NumPy):", "",
              "| L | s | Newton steps |", "|---:|---:|---:|"]
    lines += [f"| {r['L']} | {r['numpy']:.3f} | {r['steps']} |" for r in layer_rows]
    if len(layer_rows) >= 2:
        slope = fit_exponent([r["L"] for r in layer_rows], [r["numpy"] for r in layer_rows])
        lines += ["", f"Fitted: time ∝ L^{slope:.2f}"]
    lines += ["", "Batch of 16 graphs, L = 12, t drawn from 32…96:", "",
              "| NumPy one by one s | torch CPU lock step s | torch CUDA s | max rel. diff |",
              "|---:|---:|---:|---:|",
              f"| {t_loop:.3f} | {t_batch:.3f} | {cell(t_cuda_batch)} | {batch_diff:.1e} |"]
    rest = split["total"] - split["factor"] - split["solve"]
    lines += ["", f"Where one NumPy solve's time goes (L = {split_lt[0]}, t = {split_lt[1]}, "
              "another random graph; block factorisations and triangular solves timed by wrapping "
              "`newton.factor` and `_Factor.solve`, the rest is the elementwise work over the "
              "edge arrays and the Python around it):", "",
              "| total s | Newton steps | factorisations | their s | s each | triangular solves "
              "| their s | rest s | s per step |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
              f"| {split['total']:.2f} | {split['steps']} | {split['n_factor']} | "
              f"{split['factor']:.2f} | {split['factor'] / split['n_factor']:.3f} | "
              f"{split['n_solve']} | {split['solve']:.2f} | {rest:.2f} | "
              f"{split['total'] / split['steps']:.3f} |"]
    lines += ["", "Peak memory allocated by the NumPy path (tracemalloc) against one (L, t, t) "
              "float64 array (a constant ratio in L and in t: O(L t^2); a dense (L t)^2 matrix "
              "would make the ratio grow with L):", "",
              "| L | t | peak MiB | 8·L·t² bytes in MiB | ratio |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c:.0f} | {d:.0f} | {c / d:.1f} |" for a, b, c, d in memory]
    lines += ["", "![scaling](solver_scaling.png)", ""]
    out = Path(args.out)
    kept = ""  # sections written by other scripts (solver_real.py's A/B) survive a rerun
    if out.exists() and KEEP in out.read_text():
        kept = out.read_text()[out.read_text().index(KEEP):]
    out.write_text("\n".join(lines) + "\n" + kept)
    print(f"wrote {args.out} and {plot}")


if __name__ == "__main__":
    main()
