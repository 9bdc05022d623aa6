"""Faithfulness table: every method on the zoo models, written to docs/results.md.

Usage (resumable: each run caches per example under results/<dataset>/cache):
    GAFLOW_DATA=../shared/data python benchmarks/faithfulness.py --runs sst2:500
    GAFLOW_DATA=../shared/data python benchmarks/faithfulness.py --runs sst2:500,imdb:100 ...
A third field caps the tokens per text (``eraser_movies:30:256``: the first 256 tokens).
``--update`` rewrites only the sections of the datasets run and keeps the others as they are in
docs/results.md (their caches need not be on this machine); each new section says when it was
measured.
Each run is the same as ``gaflow bench --model MODEL --dataset D --n N --out results/D``.
The headline compares agf with the best baseline (any method that is not a GAF flow) per metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from solver import machine  # noqa: E402

from gaflow.api import known_methods  # noqa: E402
from gaflow.evaluation.benchmark import BenchConfig, markdown_table, run_benchmark  # noqa: E402
from gaflow.evaluation.faithfulness import METRICS  # noqa: E402

MODELS = {"sst2": "minilm-sst2", "imdb": "minilm-imdb", "ag_news": "minilm-agnews",
          "yelp_polarity": "minilm-yelp", "eraser_movies": "minilm-movies",
          "amazon_polarity": "minilm-amazon"}
ROOT = Path(__file__).resolve().parents[1]
GAF = ("agf", "af", "gf")
READING = "## Reading the table"


def headline(summary: dict) -> list[str]:
    out = []
    methods = summary["methods"]
    if "agf" not in methods:
        return out
    for m in ("aopc_delete", "aopc_pad", "lodds_delete", "lodds_pad", "comprehensiveness",
              "sufficiency", "auprc"):
        if m not in methods["agf"]:
            continue
        info = METRICS[m]
        base = {k: e[m] for k, e in methods.items() if k not in GAF and m in e}
        if not base:
            continue
        pick = max if info.higher_is_better else min
        best = pick(base, key=lambda k: base[k]["mean"])
        a, b = methods["agf"][m], base[best]
        better = a["mean"] > b["mean"] if info.higher_is_better else a["mean"] < b["mean"]
        overlap = not (a["low"] > b["high"] or b["low"] > a["high"])
        verdict = ("agf better" if better else "agf worse") + (
            " (CIs overlap)" if overlap else " (CIs separate)")
        out.append(f"| {info.name} | {a['mean']:.3f} | {best} | {b['mean']:.3f} | {verdict} |")
    return out


def split_sections(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """docs/results.md (without the reading) as its head lines and one line list per
    ``## dataset`` section, in order."""
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current = head
    for line in text.removesuffix("\n").split("\n"):
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        current.append(line)
    return head, sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="sst2:500", help="dataset:n,dataset:n,...")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cached-only", action="store_true",
                        help="compute nothing: tabulate the cached examples (per-method n)")
    parser.add_argument("--update", action="store_true",
                        help="replace or add only these datasets' sections in docs/results.md")
    args = parser.parse_args()
    methods = known_methods() if args.methods == "all" else args.methods.split(",")
    sections: dict[str, list[str]] = {}
    for item in args.runs.split(","):
        dataset, n, *rest = item.split(":")  # dataset:n or dataset:n:max_tokens
        cfg = BenchConfig(model=MODELS[dataset], dataset=dataset, methods=methods, n=int(n),
                          seed=args.seed, max_length=int(rest[0]) if rest else None)
        t0 = time.perf_counter()
        summary = run_benchmark(cfg, ROOT / "results" / dataset, cached_only=args.cached_only)
        names = [m for m in METRICS if any(m in e for e in summary["methods"].values())]
        explain_s = sum(e["seconds_per_example"] * e["n"] for e in summary["methods"].values())
        cmd = (f"gaflow bench --model {cfg.model} --dataset {dataset} --methods "
               f"{args.methods} --n {n} --seed {args.seed} --out results/{dataset}/"
               + (f" --max-length {rest[0]}" if rest else ""))
        sections[dataset] = [
            f"## {dataset}", "", f"`{cmd}`", "",
            *([f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.", ""] if args.update
              else []),
            f"Explanation time summed over examples and methods: {explain_s / 60:.0f} min "
            "(the metrics' perturbed forward passes come on top); "
            + ("tabulated from the cache (`--cached-only`): a method whose n is below the "
               "sample's was not finished." if args.cached_only else
               f"this invocation took {time.perf_counter() - t0:.0f} s, cached examples "
               "included."), "",
            markdown_table(summary, names), "",
            "agf against the best baseline (GAF flows af/gf excluded):", "",
            "| metric | agf | best baseline | its value | verdict |", "|---|---:|---|---:|---|",
            *headline(summary), "",
            f"Plots: `results/{dataset}/aopc_delete.png`, `aopc_pad.png`, `lodds_delete.png`, "
            "`lodds_pad.png`.", "",
        ]
        (ROOT / "results" / dataset / "summary_for_docs.json").write_text(
            json.dumps({"headline": headline(summary)}, indent=2))
    target = ROOT / "docs" / "results.md"
    old = target.read_text() if target.exists() else ""
    keep = old[old.index(READING):] if READING in old else ""  # the hand-written reading stays
    head = [
        "# Faithfulness results", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.",
        "Protocol: the predicted class is explained; AOPC/LOdds remove the top 10…90% of the "
        "non-special tokens (deleted, or replaced by [PAD]); ERASER comprehensiveness and "
        "sufficiency use bins 1/5/10/20/50%; special tokens are never removed. Metric "
        "definitions: `gaflow.evaluation.faithfulness`. Methods: `gaflow.methods` "
        "(sign convention in `gaflow/methods/base.py`).", "",
    ]
    if args.update and old:
        head, previous = split_sections(old[: len(old) - len(keep)])
        sections = {**previous, **sections}  # a dataset run again keeps its place
    target.write_text("\n".join(head + [x for sec in sections.values() for x in sec])
                      + "\n" + keep)
    print(f"wrote {ROOT / 'docs' / 'results.md'}")


if __name__ == "__main__":
    main()
