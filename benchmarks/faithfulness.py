"""Faithfulness table: every method on the zoo models, written to docs/results.md.

Usage (resumable: each run caches per example under results/<dir>/cache):
    GAFLOW_DATA=../shared/data python benchmarks/faithfulness.py --runs sst2:500
    GAFLOW_DATA=../shared/data python benchmarks/faithfulness.py --runs sst2@test:500,imdb:100
``dataset@split`` picks a split (default: sst2 dev, the test part elsewhere; results go to
results/<dataset> for the default split, results/<dataset>-<split> otherwise). A third field
caps the tokens per text (``eraser_movies:30:256``: the first 256 tokens). Each run is the same
as ``gaflow bench --model MODEL --dataset D [--split S] --n N --out results/<dir>``.
Each run writes its section to results/<dir>/section.md; docs/results.md is assembled from
every run's section (so a run of one dataset keeps the others' tables). The headline compares
the default flow and agf with the best baseline (any method that is not a flow) per metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from solver import machine  # noqa: E402

from gaflow.api import DEFAULT_METHOD  # noqa: E402
from gaflow.evaluation.benchmark import BenchConfig, markdown_table, run_benchmark  # noqa: E402
from gaflow.evaluation.faithfulness import METRICS  # noqa: E402
from gaflow.methods import method_names  # noqa: E402

MODELS = {"sst2": "minilm-sst2", "imdb": "minilm-imdb", "ag_news": "minilm-agnews",
          "yelp_polarity": "minilm-yelp", "eraser_movies": "minilm-movies",
          "amazon_polarity": "minilm-amazon"}
ROOT = Path(__file__).resolve().parents[1]
READING = "## Reading the table"
#: the order of the sections in docs/results.md (other runs follow, sorted)
ORDER = ["sst2-test", "ag_news-test", "ag_news", "sst2", "amazon_polarity",
         "yelp_polarity-test", "imdb-test", "eraser_movies-test", "yelp_polarity", "imdb",
         "eraser_movies"]


def headline(summary: dict, flow: str = "agf") -> list[str]:
    out = []
    methods = summary["methods"]
    if flow not in methods:
        return out
    for m in ("aopc_delete", "aopc_pad", "lodds_delete", "lodds_pad", "comprehensiveness",
              "sufficiency", "auprc"):
        if m not in methods[flow]:
            continue
        info = METRICS[m]
        base = {k: e[m] for k, e in methods.items() if k not in method_names("flow") and m in e}
        if not base:
            continue
        pick = max if info.higher_is_better else min
        best = pick(base, key=lambda k: base[k]["mean"])
        a, b = methods[flow][m], base[best]
        better = a["mean"] > b["mean"] if info.higher_is_better else a["mean"] < b["mean"]
        overlap = not (a["low"] > b["high"] or b["low"] > a["high"])
        verdict = (f"{flow} better" if better else f"{flow} worse") + (
            " (CIs overlap)" if overlap else " (CIs separate)")
        out.append(f"| {info.name} | {a['mean']:.3f} | {best} | {b['mean']:.3f} | {verdict} |")
    return out


def run_dir(dataset: str, split: str | None) -> str:
    return dataset if split is None else f"{dataset}-{split}"


def assemble() -> str:
    dirs = [p.parent.name for p in (ROOT / "results").glob("*/section.md")]
    dirs.sort(key=lambda d: (ORDER.index(d) if d in ORDER else len(ORDER), d))
    out = []
    for d in dirs:
        out += [(ROOT / "results" / d / "section.md").read_text().rstrip("\n"), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="sst2:500", help="dataset:n,dataset:n,...")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cached-only", action="store_true",
                        help="compute nothing: tabulate the cached examples (per-method n)")
    args = parser.parse_args()
    methods = method_names() if args.methods == "all" else args.methods.split(",")
    for item in args.runs.split(","):
        dataset, n, *rest = item.split(":")  # dataset[@split]:n[:max_tokens]
        dataset, _, split = dataset.partition("@")
        split = split or None
        folder = run_dir(dataset, split)
        cfg = BenchConfig(model=MODELS[dataset], dataset=dataset, methods=methods, n=int(n),
                          split=split, seed=args.seed,
                          max_length=int(rest[0]) if rest else None)
        t0 = time.perf_counter()
        summary = run_benchmark(cfg, ROOT / "results" / folder, cached_only=args.cached_only)
        names = [m for m in METRICS if any(m in e for e in summary["methods"].values())]
        explain_s = sum(e["seconds_per_example"] * e["n"] for e in summary["methods"].values())
        cmd = (f"gaflow bench --model {cfg.model} --dataset {dataset} "
               + (f"--split {split} " if split else "") + f"--methods "
               f"{args.methods} --n {n} --seed {args.seed} --out results/{folder}/"
               + (f" --max-length {rest[0]}" if rest else ""))
        compared = [f for f in dict.fromkeys([DEFAULT_METHOD, "agf"]) if f in summary["methods"]]
        section = [
            f"## {dataset}" + (f" ({split})" if split else ""), "",
            f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.", "",
            f"Made by `python benchmarks/faithfulness.py --runs {item} --methods {args.methods}`, "
            f"which runs `{cmd}`.", "",
            f"Explanation time summed over examples and methods: {explain_s / 60:.0f} min "
            "(the metrics' perturbed forward passes come on top); "
            + ("tabulated from the cache (`--cached-only`): a method whose n is below the "
               "sample's was not finished." if args.cached_only else
               f"this invocation took {time.perf_counter() - t0:.0f} s, cached examples "
               "included."), "",
            markdown_table(summary, names), "",
        ]
        for flow in compared:
            section += [
                f"{flow} against the best baseline (flows excluded):", "",
                f"| metric | {flow} | best baseline | its value | verdict |",
                "|---|---:|---|---:|---|", *headline(summary, flow), "",
            ]
        section += [
            f"Plots: `results/{folder}/aopc_delete.png`, `aopc_pad.png`, `lodds_delete.png`, "
            "`lodds_pad.png`.", "",
        ]
        (ROOT / "results" / folder / "section.md").write_text("\n".join(section))
        (ROOT / "results" / folder / "summary_for_docs.json").write_text(
            json.dumps({flow: headline(summary, flow) for flow in compared}, indent=2))
    doc = [
        "# Faithfulness results", "",
        f"Assembled {time.strftime('%Y-%m-%d')}; runs on {machine()}.",
        "Protocol: the predicted class is explained; AOPC/LOdds remove the top 10…90% of the "
        "non-special tokens (deleted, or replaced by [PAD]); ERASER comprehensiveness and "
        "sufficiency use bins 1/5/10/20/50%; special tokens are never removed. Metric "
        "definitions: `gaflow.evaluation.faithfulness`. Methods: `gaflow.methods` "
        "(sign convention in `gaflow/methods/base.py`). Each section says when and how it was "
        "made; sections made before a method existed have no row for it.", "",
        assemble(),
    ]
    target = ROOT / "docs" / "results.md"
    keep = ""
    if target.exists() and READING in target.read_text():  # the hand-written reading stays
        keep = target.read_text()[target.read_text().index(READING):]
    target.write_text("\n".join(doc) + "\n" + keep)
    print(f"wrote {ROOT / 'docs' / 'results.md'}")


if __name__ == "__main__":
    main()
