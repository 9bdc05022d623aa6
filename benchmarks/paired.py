"""Paired differences between methods on the same examples, from a benchmark run's cache.

    python benchmarks/paired.py results/sst2-test --method agf_cp --against integrated_gradients,lrp

The tables of ``gaflow bench`` give each method's mean with its own bootstrap CI; two methods
scored on the same examples are compared more sharply by the per-example difference. For every
metric this prints the mean of ``method - other`` over the examples both have (matched by
``id``) with a 95% percentile-bootstrap CI and how often ``method`` is better
(``gaflow.evaluation.stats.paired_difference``), as a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from gaflow.errors import InputError
from gaflow.evaluation.benchmark import _read_cache, metric_values
from gaflow.evaluation.stats import paired_difference

#: metric -> True when higher is better
METRICS = {"aopc_delete": True, "lodds_delete": False, "aopc_pad": True, "lodds_pad": False,
           "comprehensiveness": True, "sufficiency": False}


def paired_rows(run: Path, method: str, others: list[str]) -> list[str]:
    cache = run / "cache"
    records = {}
    for name in [method, *others]:
        rows = _read_cache(cache / f"{name}.jsonl")
        if not rows:
            raise InputError(f"{cache / (name + '.jsonl')} has no records")
        records[name] = {r["id"]: r for r in rows}
    lines = []
    for other in others:
        ids = sorted(set(records[method]) & set(records[other]), key=str)
        a = metric_values([records[method][i] for i in ids], ["delete", "pad"])
        b = metric_values([records[other][i] for i in ids], ["delete", "pad"])
        for metric, higher in METRICS.items():
            mean, low, high, better = paired_difference(a[metric], b[metric], higher)
            verdict = ("no difference shown" if low <= 0 <= high
                       else f"{method} {'better' if (mean > 0) == higher else 'worse'}")
            lines.append(f"| {other} | {metric} | {len(ids)} | "
                         f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] | {better:.0%} | {verdict} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a folder written by gaflow bench (with cache/)")
    ap.add_argument("--method", required=True)
    ap.add_argument("--against", required=True, help="comma-separated methods")
    args = ap.parse_args(argv)
    others = [m for m in args.against.split(",") if m]
    lines = [f"### {args.run.name}: {args.method} minus each other method, same examples", "",
             f"`python benchmarks/paired.py {shlex.join(sys.argv[1:] if argv is None else argv)}`",
             "", "| against | metric | n | mean difference [95% CI] | method better on | verdict |",
             "|---|---|---:|---|---:|---|", *paired_rows(args.run, args.method, others), ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
