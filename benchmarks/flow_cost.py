"""Cost of the default flow against the paper's: explain() per example, agf_cp (the default)
and agf_rp against agf.

    GAFLOW_DATA=../shared/data python benchmarks/flow_cost.py

Median seconds per example over short texts (SST-2 dev, first 20) and texts up to 128 tokens (AG
News train part, first 10), one torch thread, the two methods timed in the same run, each text
twice. Writes benchmarks/results/flow_cost.md.

The issue's cost target (issue 15): the default at most 2x the paper's agf per example.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import gaflow
from gaflow.data import load_dataset

CASES = (("minilm-sst2", "sst2", "dev", 20), ("minilm-agnews", "ag_news", "train", 10))


def main() -> None:
    torch.set_num_threads(1)
    lines = ["# explain() cost: agf_cp (default) and agf_rp against agf (the paper's)", "",
             "`python benchmarks/flow_cost.py` (median over the texts, each timed twice; "
             "max 128 tokens)", "",
             "| model | texts | tokens | agf | agf_cp | agf_rp | agf_cp / agf | agf_rp / agf |",
             "|---|---|---|---|---|---|---|---|"]
    for name, dataset, split, n in CASES:
        model, tok = gaflow.load_model(name)
        texts = load_dataset(dataset, split).texts[:n]
        times: dict[str, list[float]] = {"agf": [], "agf_cp": [], "agf_rp": []}
        for m in times:  # warm-up
            gaflow.explain(model, tok, texts[0], method=m)
        for _ in range(2):
            for x in texts:
                for m in times:
                    t0 = time.perf_counter()
                    gaflow.explain(model, tok, x, method=m, truncation=True, max_length=128)
                    times[m].append(time.perf_counter() - t0)
        lens = [min(128, len(tok(x)["input_ids"])) for x in texts]
        a, c, b = (np.median(times[m]) for m in ("agf", "agf_cp", "agf_rp"))
        lines.append(f"| {name} | {dataset}/{split}, first {n} | {min(lens)}–{max(lens)} | "
                     f"{a * 1000:.0f} ms | {c * 1000:.0f} ms | {b * 1000:.0f} ms | "
                     f"{c / a:.2f} | {b / a:.2f} |")
    out = Path(__file__).parent / "results" / "flow_cost.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
