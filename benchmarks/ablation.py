"""Ablation of flow constructions for encoder classifiers (issue 15): information tensor x
residual x routing x output set, on development data only.

    python benchmarks/ablation.py --dataset sst2 --split dev --n 200 \
        --out benchmarks/results/ablation_sst2_dev.json
    python benchmarks/ablation.py --report benchmarks/results/ablation_*.json > docs/ablation.md

Every variant is computed from the same two captures of each example (the paper's gradients,
and gradients with every LayerNorm's scale held fixed plus the residual stream's part,
:mod:`gaflow.capture.stream`), so the variants differ only in the construction. Metrics: AOPC
and LOdds with the top 10..90% of the non-special tokens deleted (the benchmark's protocol,
:mod:`gaflow.evaluation`), and the normalised entropy of the positive token shares
(non-special tokens; 1 = uniform). Baselines (``gae``, ``attention``, ``rollout``, ``lrp``, ...) go
through ``gaflow.explain`` on the same examples.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gaflow
from gaflow.capture import capture
from gaflow.data import load_dataset
from gaflow.evaluation.benchmark import sample_indices
from gaflow.evaluation.faithfulness import AOPC_FRACTIONS, log_odds, mean_drop, share_entropy
from gaflow.evaluation.perturb import class_probabilities, counts, perturb, top_positions
from gaflow.evaluation.stats import bootstrap_ci
from gaflow.flow.graph import build_graph
from gaflow.flow.routing import proportional_flow
from gaflow.flow.seq2seq import with_residual, with_self_edges
from gaflow.flow.tensors import INFORMATION_TENSORS
from gaflow.models.zoo import RECIPES
from gaflow.solvers import solve_flow

TENSORS = {  # the registered tensors (agf, af, gf, agf_net), and one tried only here:
    **INFORMATION_TENSORS,
    # attention where the gradient is positive (the sign of the AGF term, not its size)
    "asf": lambda a, g: (a * (g > 0)).mean(axis=1),
}
# a tensor name "n:<tensor>" applies <tensor> to norm-weighted attention A_h[i,j] ||v_hj W_O^h||
GRADIENTS = ("paper", "linear", "contrast", "conservative", "conservative+contrast",
             "norms+attention", "norms+activations")
# paper: GAF's; linear: LayerNorms' scales fixed; contrast: LayerNorms' scales fixed and the
# target logit against the other classes; conservative: conservative propagation (LayerNorm
# scales and attention weights fixed, activations by f(z)/z: gaflow.capture.conservative), of
# the target logit or (+contrast) of the target against the other classes; norms+attention,
# norms+activations: two of conservative propagation's three rules (grid "rules")


def variants(grid: str = "main", alphas=(1.0,)) -> dict[str, tuple]:
    """name -> (tensor, gradients, residual, routing, outputs). ``grid="round2"``: the second
    round, around the first round's best (measured self-edge, proportional routing): the
    self-edge's weight (``rgradxA``: A times the measured one) and the gradients' kind."""
    if grid == "norms":  # the norm-based view (Kobayashi et al. 2020), proportional routing
        items = [("n:af", "paper", 0.0), ("n:af", "paper", 0.5), ("n:asf", "linear", 0.5),
                 ("n:agf", "linear", "gradient"), ("n:agf", "linear", 0.5),
                 ("asf", "linear", 0.5), ("agf_net", "linear", "gradient")]
        return {_name(t, g, r, "proportional", "all"): (t, g, r, "proportional", "all")
                for t, g, r in items}
    if grid == "conservative":  # round 3: gradients by conservative propagation
        items = [("agf_net", "conservative", "gradient", "proportional"),
                 ("agf", "conservative", "gradient", "proportional"),
                 ("agf_net", "conservative+contrast", "gradient", "proportional"),
                 ("agf_net", "conservative", ("gradient", 2.0), "proportional"),
                 ("agf_net", "conservative", 0.5, "proportional"),
                 ("agf_net", "conservative", 0.0, "proportional"),
                 ("agf_net", "conservative", "gradient", "central"),
                 ("agf", "conservative", 0.0, "central"),
                 ("agf_net", "linear", "gradient", "proportional"),  # agf_rp
                 ("agf", "paper", 0.0, "central")]  # the paper's agf
        return {_name(t, g, r, routing, "all"): (t, g, r, routing, "all")
                for t, g, r, routing in items}
    if grid == "rules":  # round 3: conservative propagation's rules one at a time
        return {_name("agf_net", g, "gradient", "proportional", "all"):
                ("agf_net", g, "gradient", "proportional", "all")
                for g in ("linear", "norms+attention", "norms+activations", "conservative")}
    if grid == "final":  # the candidates of the first two rounds, for a second dev set
        paper = ("agf", "paper", 0.0, "central", "all")
        out = {_name(*paper): paper}
        for tensor in ("agf", "agf_net"):
            for grads in ("linear", "contrast"):
                for alpha in alphas:
                    residual = "gradient" if alpha == 1.0 else ("gradient", alpha)
                    out[_name(tensor, grads, residual, "proportional", "all")] = (
                        tensor, grads, residual, "proportional", "all")
        return out
    if grid == "round2":
        out = {}
        for tensor in ("agf", "agf_net"):
            for grads in ("linear", "contrast", "paper"):
                for alpha in (0.5, 1.0, 2.0, 4.0):
                    residual = "gradient" if alpha == 1.0 else ("gradient", alpha)
                    if grads == "paper" and alpha != 1.0:
                        continue
                    out[_name(tensor, grads, residual, "proportional", "all")] = (
                        tensor, grads, residual, "proportional", "all")
        return out
    grid = [  # both routings
        ("agf", "paper", 0.0), ("af", "paper", 0.0), ("gf", "paper", 0.0),
        ("agf", "paper", 0.5), ("af", "paper", 0.5),
        ("agf", "linear", "gradient"), ("agf", "contrast", "gradient"),
    ]
    proportional_only = [
        ("agf", "linear", 0.0), ("agf", "linear", 0.5), ("agf", "paper", 0.9),
        ("agf", "contrast", 0.5), ("agf", "contrast", 0.9), ("agf_net", "contrast", "gradient"),
        ("agf_net", "linear", "gradient"), ("gf", "contrast", "gradient"),
    ]
    out = {}
    for routing, items in (("central", grid), ("proportional", grid + proportional_only)):
        for tensor, grads, residual in items:
            out[_name(tensor, grads, residual, routing, "all")] = (
                tensor, grads, residual, routing, "all")
    for tensor, grads, residual in [("agf", "paper", 0.0), ("agf", "contrast", "gradient")]:
        out[_name(tensor, grads, residual, "proportional", "first")] = (
            tensor, grads, residual, "proportional", "first")
    return out


def _name(tensor, grads, residual, routing, outputs) -> str:
    if isinstance(residual, tuple):
        return f"{tensor}/{grads}/rgradx{residual[1]:g}/{routing}/{outputs}"
    res = "rgrad" if residual == "gradient" else ("none" if residual == 0 else f"r{residual}")
    return f"{tensor}/{grads}/{res}/{routing}/{outputs}"


def scores_of(caps: np.ndarray, routing: str, outputs: str) -> np.ndarray:
    out = None if outputs == "all" else [0]
    if routing == "central":
        return solve_flow(caps, out).attributions
    return proportional_flow(build_graph(caps, out))[0]


def build_caps(spec, att, caps_by_grads, norms=None) -> np.ndarray:
    tensor, grads, residual, _, _ = spec
    grad, stream = caps_by_grads[grads]
    if tensor.startswith("n:"):
        att, tensor = att * norms[:, :, None, :], tensor[2:]
    caps = TENSORS[tensor](att, grad)
    if stream is None:  # the paper's gradients with the measured stream of the linear ones
        stream = caps_by_grads["linear"][1]
    if isinstance(residual, tuple):
        return with_self_edges(caps, residual[1] * np.maximum(stream, 0.0) / att.shape[1])
    if residual == "gradient":
        return with_self_edges(caps, np.maximum(stream, 0.0) / att.shape[1])
    return with_residual(caps, residual)


def delete_metrics(model, tok, ids, special, scores, target) -> dict:
    n_free = int((~special).sum())
    seqs = [list(ids)] + [
        perturb(ids, top_positions(scores, special, c), "delete", tok)
        for c in counts(n_free, AOPC_FRACTIONS)
    ]
    p = class_probabilities(model, seqs, tok, 64)[:, target]
    return {"aopc_delete": float(mean_drop(p[:1], p[None, 1:])[0]),
            "lodds_delete": float(log_odds(p[:1], p[None, 1:])[0]),
            "entropy": share_entropy(scores, special)}


def run(args) -> dict:
    torch.set_num_threads(1)
    model, tok = gaflow.load_model(args.model)
    ds = load_dataset(args.dataset, args.split)
    idx = sample_indices(len(ds), args.n, args.seed)
    max_length = args.max_length or RECIPES[args.model].max_length
    specs = variants(args.grid, [float(a) for a in args.alphas.split(",")])
    rows: dict[str, list[dict]] = {name: [] for name in [*specs, *args.baselines]}
    times: dict[str, float] = dict.fromkeys(rows, 0.0)
    t_start = time.perf_counter()
    for n_done, k in enumerate(idx):
        text = ds.texts[k]
        enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt",
                  return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
        ids = enc["input_ids"][0].tolist()
        caps_by_grads, cost = {}, {}
        needed = {spec[1] for spec in specs.values()} | {"paper", "linear"}
        for grads in [g for g in GRADIENTS if g in needed]:
            t0 = time.perf_counter()
            cap = capture(model, dict(enc), [None], stream=grads != "paper",
                          objective="contrast" if grads.endswith("contrast") else "logit",
                          values=grads == "paper",
                          conservative=(True if grads.startswith("conservative") else
                                        tuple(grads.split("+")) if grads.startswith("norms+")
                                        else False))
            if grads == "paper":
                norms = cap.value_norms[0]
            cost[grads] = time.perf_counter() - t0
            caps_by_grads[grads] = (cap.gradients[0], cap.stream[0] if grads != "paper" else None)
            target, att = int(cap.targets[0]), cap.attentions[0]
        for name, spec in specs.items():
            t3 = time.perf_counter()
            caps = build_caps(spec, att, caps_by_grads, norms)
            sc = scores_of(caps, spec[3], spec[4])
            times[name] += time.perf_counter() - t3 + cost[spec[1]]
            rows[name].append(delete_metrics(model, tok, ids, special, sc, target))
        for name in args.baselines:
            t3 = time.perf_counter()
            exp = gaflow.explain(model, tok, text, method=name, truncation=True,
                                 max_length=max_length)
            times[name] += time.perf_counter() - t3
            rows[name].append(delete_metrics(model, tok, ids, special, exp.scores, target))
        if (n_done + 1) % 20 == 0:
            print(f"{n_done + 1}/{len(idx)} examples, {time.perf_counter() - t_start:.0f} s",
                  file=sys.stderr)
    return {
        "command": "python benchmarks/ablation.py " + shlex.join(sys.argv[1:]),
        "dataset": args.dataset, "split": args.split, "model": args.model, "n": len(idx),
        "seed": args.seed, "max_length": max_length,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "grid": args.grid,
        "variants": {name: list(spec) for name, spec in specs.items()},
        "seconds_per_example": {name: t / len(idx) for name, t in times.items()},
        "rows": rows,
    }


def report(paths: list[str]) -> str:
    lines = []
    for path in paths:
        res = json.loads(Path(path).read_text())
        lines += [f"### {res['dataset']}/{res['split']}, model `{res['model']}`, n = {res['n']}, "
                  f"seed {res['seed']}, max {res['max_length']} tokens", "",
                  f"`{res['command']}`", "",
                  "| construction (tensor/gradients/residual/routing/outputs) | ↑ AOPC (delete) | "
                  "↓ LOdds (delete) | entropy (1 = uniform) | s/example |",
                  "|---|---|---|---|---|"]
        summary = []
        for name, recs in res["rows"].items():
            cells = []
            for key in ("aopc_delete", "lodds_delete", "entropy"):
                m, lo, hi = bootstrap_ci([r[key] for r in recs])
                cells.append(f"{m:.3f} [{lo:.3f}, {hi:.3f}]")
            summary.append((np.mean([r["aopc_delete"] for r in recs]), name, cells))
        for _, name, cells in sorted(summary, reverse=True):
            lines.append(f"| {name} | {' | '.join(cells)} | "
                         f"{res['seconds_per_example'][name]:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm-sst2")
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--split", default="dev")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--baselines", default="gae,attention,rollout")
    p.add_argument("--grid", default="main",
                   choices=["main", "round2", "norms", "final", "conservative", "rules"])
    p.add_argument("--alphas", default="1", help="--grid final: self-edge weights to try")
    p.add_argument("--out", default=None)
    p.add_argument("--report", nargs="*", default=None)
    args = p.parse_args()
    if args.report:
        print(report(args.report))
        return
    args.baselines = [b for b in args.baselines.split(",") if b]
    res = run(args)
    text = json.dumps(res)
    if args.out:
        Path(args.out).write_text(text)
    print(report([args.out]) if args.out else text)


if __name__ == "__main__":
    main()
