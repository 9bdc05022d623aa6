"""Time explain_generation for a 128-token prompt on GPT-2-small-sized and T5-small-sized
random models (12 / 6+6 layers): greedy generation + capture, and the flow solve of the 4
generated tokens' graphs (one batched ``solve_flow`` call; numpy and torch backends), with the
plain graph (``residual=0``) and with ``residual="gradient"``.

Usage: python benchmarks/generation.py   (writes benchmarks/results/generation.md)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from solver import machine  # noqa: E402

from gaflow import solvers  # noqa: E402
from gaflow.generation import explain_generation  # noqa: E402


class _Tok:
    """Whitespace tokenizer over integer ids, enough for a timing run."""

    pad_token_id, eos_token_id = 0, None

    def __call__(self, text, add_special_tokens=True, text_target=None):
        return {"input_ids": [int(w) for w in (text_target or text).split()]}

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]


def timed_solver():
    calls = []
    real = solvers.solve_flow

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        out = real(*a, **k)
        calls.append(time.perf_counter() - t0)
        return out

    return calls, wrapper


def main() -> None:
    import transformers as tf

    import gaflow.generation.driver as gen

    torch.manual_seed(0)
    models = {
        "GPT-2 small size (12 layers, 12 heads, 768)": tf.GPT2LMHeadModel(
            tf.GPT2Config(attn_implementation="eager")),
        "T5-small size (6+6 layers, 8 heads, 512)": tf.T5ForConditionalGeneration(
            tf.T5Config(attn_implementation="eager", decoder_start_token_id=0)),
    }
    prompt = " ".join(str(i) for i in np.random.default_rng(0).integers(100, 30000, 128))
    load = os.getloadavg()[0]  # the machine may be shared: the timings mean little above 1
    rows = []
    for name, model in models.items():
        model.eval()
        for residual in (0.0, "gradient"):
            for backend in ("numpy", "torch"):
                calls, wrapper = timed_solver()
                gen.solve_flow = wrapper
                try:
                    t0 = time.perf_counter()
                    e = explain_generation(model, _Tok(), prompt, max_new_tokens=4, method="agf",
                                           stop_at_eos=False, residual=residual,
                                           backend=backend)
                    total = time.perf_counter() - t0
                finally:
                    gen.solve_flow = solvers.solve_flow
                rows.append((name, residual, backend, len(e.tokens), total, sum(calls)))
                print(*rows[-1][:3], f"{total:.1f} s", f"{sum(calls):.2f} s", flush=True)
    lines = ["# explain_generation timing (128-token prompt, 4 generated tokens, agf)", "",
             f"Machine: {machine()}, load average {load:.1f} at the start. Random weights "
             "(timing only). "
             "`python benchmarks/generation.py`.", "",
             "| model | residual | solver | players | total (generate + capture + solve) "
             "| solve (4 graphs, one call) |",
             "|---|---|---|---:|---:|---:|"]
    for name, residual, backend, n, total, solve in rows:
        lines.append(f"| {name} | {residual} | {backend} | {n} | {total:.1f} s | {solve:.2f} s |")
    out = Path(__file__).parent / "results" / "generation.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
