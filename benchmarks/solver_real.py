"""Newton steps and seconds on real AGF graphs: ``python benchmarks/solver_real.py``.

The graphs: the AGF information tensors (``method="agf"``, predicted class) of the zoo's
``minilm-sst2`` (pretrained MiniLM, 12 layers) on SST-2 dev sentences, consecutive sentences
joined until the text reaches exactly ``t`` tokens (specials included), ``--n`` graphs per ``t``
(sentence blocks do not overlap). They are cached in ``--cache`` (an npz, not committed).

With ``--synthetic k``, also ``k`` random attention-like graphs with 12 layers per ``t`` (the
capacities of benchmarks/solver.py, seed 0), where the issue's time targets are set.

Every graph is solved (``mu=None``, rtol 1e-6, NumPy backend, float64) by each method of
``--methods`` in the same process, interleaved graph by graph, so machine load hits all methods
alike (it is shared: the load average is printed and written; CPU seconds of the process are
given next to wall seconds). Methods are ``solve_flow``'s ``strategy``: ``path`` (the path
following, unchanged), ``finish`` (the path ended at a certified optimal face),
``primal_dual`` (Mehrotra iterations to the face, its certified centre; ``finish`` as
fallback) and ``face`` (the default: one exact maximum flow, its optimal face, one centring).
``face:scipy`` / ``face:ortools`` run ``face`` with that max-flow engine (``auto``, OR-tools
where installed, otherwise). ``--face-parts`` times the parts of ``face`` instead (the engine
of ``GAFLOW_MAXFLOW``). Step counts (factorisations) are the
stable figure. The answers are compared with the first method's (relative max difference of
the attributions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from solver import attention_like, machine  # noqa: E402

import gaflow  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def real_graphs(tokens: list[int], n: int, cache: Path) -> dict[int, list[np.ndarray]]:
    """``{t: [n (12, t, t) AGF tensors]}`` of minilm-sst2 on joined SST-2 dev sentences."""
    store = dict(np.load(cache)) if cache.exists() else {}
    out: dict[int, list[np.ndarray]] = {}
    missing = [t for t in tokens if any(f"{t}_{k}" not in store for k in range(n))]
    if missing:
        import torch

        from gaflow.capture import capture
        from gaflow.data import load_dataset
        from gaflow.flow.tensors import information_tensor

        torch.set_num_threads(1)
        model, tok = gaflow.load_model("minilm-sst2")
        texts = load_dataset("sst2", "dev").texts
        for t in missing:
            pos = 0
            for k in range(n):
                ids: list[int] = []
                while len(ids) < t - 2:
                    ids += tok(texts[pos % len(texts)], add_special_tokens=False)["input_ids"]
                    pos += 1
                text = tok.decode(ids[: t - 2])
                enc = tok(text, return_tensors="pt", truncation=True, max_length=t)
                cap = capture(model, dict(enc), [None])
                store[f"{t}_{k}"] = information_tensor("agf", cap.attentions[0],
                                                       cap.gradients[0])
                print(f"graph t={t} #{k}: {enc['input_ids'].shape[1]} tokens", flush=True)
        np.savez_compressed(cache, **store)
    for t in tokens:
        out[t] = [store[f"{t}_{k}"] for k in range(n)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", default="128,512")
    parser.add_argument("--n", type=int, default=5, help="graphs per t")
    parser.add_argument("--methods", default="path,finish,primal_dual",
                        help="values of solve_flow's strategy; STRATEGY:ENGINE (face:scipy, "
                             "face:ortools) runs it with that max-flow engine (GAFLOW_MAXFLOW)")
    parser.add_argument("--synthetic", type=int, default=3,
                        help="also this many random attention-like L=12 graphs per t "
                             "(solver.py's capacities, seed 0)")
    parser.add_argument("--cache", default="/tmp/gaflow_real_graphs.npz")
    parser.add_argument("--out", default=None, help="append a markdown table to this file")
    parser.add_argument("--face-parts", action="store_true",
                        help="instead: where strategy='face' spends its time, per graph")
    args = parser.parse_args()
    tokens = [int(v) for v in args.tokens.split(",")]
    methods = args.methods.split(",")
    real = real_graphs(tokens, args.n, Path(args.cache))
    rng = np.random.default_rng(0)
    sets = [(f"MiniLM AGF {real[t][0].shape[0]} × {t}", real[t]) for t in tokens]
    if args.synthetic:
        sets += [(f"attention-like 12 × {t}", [attention_like(rng, 12, t)
                                                for _ in range(args.synthetic)]) for t in tokens]
    if args.face_parts:
        face_parts(sets, args)
        return
    load0 = os.getloadavg()
    rows = []
    for name, graphs in sets:
        res: dict[str, list] = {m: [] for m in methods}
        for caps in graphs:
            ref = None
            for m in methods:
                start, cpu = time.perf_counter(), time.process_time()
                strategy, _, engine = m.partition(":")
                before = os.environ.get("GAFLOW_MAXFLOW")
                os.environ["GAFLOW_MAXFLOW"] = engine or before or "auto"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    sol = gaflow.solve_flow(caps, strategy=strategy)
                if before is None:
                    del os.environ["GAFLOW_MAXFLOW"]
                else:
                    os.environ["GAFLOW_MAXFLOW"] = before
                took = time.perf_counter() - start
                cpu = time.process_time() - cpu
                if ref is None:
                    ref = sol
                diff = float(np.abs(sol.attributions - ref.attributions).max()
                             / np.abs(ref.attributions).max())
                res[m].append((sol.iterations, took, diff, sol.converged, len(caught), cpu,
                               sol.face))
                print(f"{name} {m}: steps {sol.iterations} {took:.2f} s (cpu {cpu:.2f} s) "
                      f"diff {diff:.1e} converged {sol.converged} face {sol.face}", flush=True)
        for m in methods:
            steps = [r[0] for r in res[m]]
            secs = [r[1] for r in res[m]]
            cpus = [r[5] for r in res[m]]
            rows.append((name, m, statistics.median(steps), max(steps), statistics.median(secs),
                         max(secs), statistics.median(cpus), max(r[2] for r in res[m]),
                         sum(r[3] for r in res[m]), len(res[m]), sum(r[6] for r in res[m])))
    load1 = os.getloadavg()
    lines = [f"Machine: {machine()}; load average (1, 5, 15 min) {load0[0]:.2f} {load0[1]:.2f} "
             f"{load0[2]:.2f} before, {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} after.", "",
             f"Command: `python benchmarks/solver_real.py --tokens {args.tokens} --n {args.n} "
             f"--methods {args.methods} --synthetic {args.synthetic}`", "",
             "| graphs (L × t) | method | median steps | max steps | median s | max s | "
             "median CPU s | max rel. diff vs first method | converged | face |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m, ms, xs, mt, xt, mc, d, c, n, f in rows:
        lines.append(f"| {name} | {m} | {ms:g} | {xs} | {mt:.3f} | {xt:.3f} | {mc:.3f} | "
                     f"{d:.1e} | {c}/{n} | {f}/{n} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + text + "\n")


def face_parts(sets, args) -> None:
    """CPU seconds of the parts of ``strategy="face"`` (first max-flow round, certificate,
    refining round where needed, centring) on every graph, one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from gaflow.flow.graph import build_graph
    from gaflow.solvers import face, maxflow
    from gaflow.solvers.api import flow_bound, flow_units

    load0 = os.getloadavg()
    lines = ["| graphs (L × t) | max flow (round 1) s | certificate s | refining round s | "
             "centring s | centring steps | factorisations | s per step | total s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    with threadpool_limits(1, "blas"):
        for name, graphs in sets:
            for caps in graphs:
                graph = flow_units(build_graph(caps))
                clock = time.process_time
                t0 = clock()
                arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
                t1 = clock()
                fc = face._classify_arcs(graph, arcs)
                t2 = clock()
                refine = 0.0
                if fc is None:
                    arcs = maxflow.refine(graph, arcs)
                    fc = face._classify_arcs(graph, arcs)
                    refine = clock() - t2
                t3 = clock()
                if fc is None:  # solve_flow follows the path here: no parts to time
                    lines.append(f"| {name} | {t1 - t0:.3f} | {t2 - t1:.3f} | {refine:.3f} | "
                                 "no certified face | — | — | — | — |")
                    print(lines[-1], flush=True)
                    continue
                res = face.centre(graph, fc, face.max_flow_start(graph, fc, arcs),
                                  max_steps=face.COMBINATORIAL_STEPS, patience=face.PATIENCE)
                t4 = clock()
                steps = res.steps if res.ok else f"{res.steps} (failed: {res.message})"
                lines.append(f"| {name} | {t1 - t0:.3f} | {t2 - t1:.3f} | {refine:.3f} | "
                             f"{t4 - t3:.3f} | {steps} | {res.factored} | "
                             f"{(t4 - t3) / max(res.steps, 1):.3f} "
                             f"| {t4 - t0:.3f} |")
                print(lines[-1], flush=True)
    load1 = os.getloadavg()
    text = "\n".join([f"Machine: {machine()}; load average (1, 5, 15 min) {load0[0]:.2f} "
                      f"{load0[1]:.2f} {load0[2]:.2f} before, {load1[0]:.2f} {load1[1]:.2f} "
                      f"{load1[2]:.2f} after.", "",
                      f"Command: `python benchmarks/solver_real.py --tokens {args.tokens} --n "
                      f"{args.n} --synthetic {args.synthetic} --face-parts` (max-flow engine "
                      f"{maxflow.engine()})", ""] + lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
