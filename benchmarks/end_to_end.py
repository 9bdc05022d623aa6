"""End-to-end cost of an AGF explanation against one forward+backward pass and captum IG-50.

    python benchmarks/end_to_end.py [--lengths 32,128,512] [--repeat 3] [--ig-max 128]

Models: the zoo's ``minilm-sst2`` (all-MiniLM-L6-v2 weights, 6 layers) and a randomly initialised
BERT-base-sized classifier (12 layers, 12 heads, hidden 768; nothing is downloaded). Inputs are
SST-2-like text repeated and cut to exactly ``t`` tokens. Times are medians of ``--repeat`` runs.

* ``fwd+bwd``: one forward pass with attentions and one backward pass of the target logit to the
  input embeddings (what any gradient method pays at least once);
* AGF split: ``capture`` (forward + backward to the attentions, the AGF information tensor
  formed inside the pass as ``explain`` does: only (L, t, t) leaves the model), ``tensor`` (the
  same tensor from float64 NumPy copies of every attention and gradient, the path before issue
  16, shown for comparison and not counted) and ``solve`` (the central flow,
  ``gaflow.solve_flow``); ``explain`` is ``gaflow.explain(method="agf")`` (tokenisation and the
  result included), ``default`` the default method (``DEFAULT_METHOD``) end to end;
  ``explain / parts`` is ``explain`` over tokenisation + capture + solve, the two timed in
  alternation (``--repeat`` pairs, at least 5) so that machine load and cache state hit both alike;
* ``IG-50``: ``gaflow.explain(method="integrated_gradients")`` (captum LayerIntegratedGradients,
  50 steps), for ``t <= --ig-max``.

Writes ``benchmarks/results/end_to_end.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from solver import machine  # noqa: E402

import gaflow  # noqa: E402
from gaflow.capture import capture  # noqa: E402
from gaflow.flow.constructions import DEFAULT_METHOD  # noqa: E402
from gaflow.flow.tensors import INFORMATION_TENSORS, information_tensor  # noqa: E402

TEXT = ("although this dog is not cute, it is very smart, and the film around it is a warm, "
        "funny and surprisingly moving story about friendship and growing older. ")


def text_of(tokenizer, t: int) -> str:
    """A text that tokenizes to exactly ``t`` tokens (specials included)."""
    ids = tokenizer(TEXT * (t // 8 + 2), add_special_tokens=False)["input_ids"][: t - 2]
    text = tokenizer.decode(ids)
    n = len(tokenizer(text)["input_ids"])
    assert n == t, (n, t)
    return text


def bert_base(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, num_labels=2, attn_implementation="eager")
    return BertForSequenceClassification(cfg).eval()


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def alternated(fa, fb, repeat: int) -> tuple[float, float]:
    """Medians of ``fa`` and ``fb`` timed in turn, ``repeat`` times each."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, times in ((fa, ta), (fb, tb)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def fwd_bwd(model, enc) -> None:
    emb = model.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
    out = model(inputs_embeds=emb, attention_mask=enc["attention_mask"], output_attentions=True)
    out.logits[0, int(out.logits[0].argmax())].backward()


def measure(name, model, tok, lengths, repeat, ig_max) -> list[dict]:
    rows = []
    for t in lengths:
        text = text_of(tok, t)
        enc = tok(text, return_tensors="pt")
        fwd_bwd(model, enc)  # warm-up
        t_fb, _ = timed(lambda e=enc: fwd_bwd(model, e), repeat)
        agf = INFORMATION_TENSORS["agf"]
        t_cap, cap = timed(lambda e=enc, f=agf: capture(model, dict(e), [None], tensor=f),
                           repeat)
        caps = cap.tensor[0]
        t_old, _ = timed(lambda e=enc: (lambda c: information_tensor(
            "agf", c.attentions[0], c.gradients[0]))(capture(model, dict(e), [None])), repeat)
        t_sol, sol = timed(lambda c=caps: gaflow.solve_flow(c), repeat if t <= 128 else 1)
        t_exp, _ = timed(lambda x=text: gaflow.explain(model, tok, x, method="agf"),
                         repeat if t <= 128 else 1)
        t_rp, _ = timed(lambda x=text: gaflow.explain(model, tok, x), repeat)

        def parts(x=text, f=agf):
            c = capture(model, dict(tok(x, return_tensors="pt")), [None], tensor=f)
            gaflow.solve_flow(c.tensor[0])

        t_alt, t_parts = alternated(lambda x=text: gaflow.explain(model, tok, x, method="agf"),
                                    parts, max(repeat, 5) if t <= 128 else 1)
        t_ig = None
        if t <= ig_max:
            t_ig, _ = timed(
                lambda x=text: gaflow.explain(model, tok, x, method="integrated_gradients"),
                repeat)
        row = dict(model=name, t=t, fb=t_fb, capture=t_cap, numpy_path=t_old, solve=t_sol,
                   steps=sol.iterations, explain=t_exp, default=t_rp, ig=t_ig,
                   explain_alt=t_alt, parts=t_parts)
        rows.append(row)
        print(row, flush=True)
    return rows


def table(rows: list[dict]) -> list[str]:
    """Markdown table of :func:`measure` rows (also used by ``gpu.py``)."""

    def cell(v):
        return "—" if v is None else f"{v:.3f}"

    lines = [
        "| model | t | fwd+bwd | capture (+ tensor) | before: capture + NumPy tensor | solve | "
        "Newton steps | AGF total | AGF / fwd+bwd | explain (agf) | explain / AGF total | "
        "explain / parts (alternated) | "
        f"explain ({DEFAULT_METHOD}) | {DEFAULT_METHOD} / fwd+bwd | IG-50 | IG-50 / AGF |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        total = r["capture"] + r["solve"]
        ratio_ig = None if r["ig"] is None else r["ig"] / total
        alt = None if r.get("parts") is None else r["explain_alt"] / r["parts"]
        lines.append(
            f"| {r['model']} | {r['t']} | {r['fb']:.3f} | {r['capture']:.3f} | "
            f"{r['numpy_path']:.3f} | {r['solve']:.3f} | {r['steps']} | {total:.3f} | "
            f"{total / r['fb']:.1f} | {r['explain']:.3f} | {r['explain'] / total:.2f} | "
            f"{'—' if alt is None else f'{alt:.2f}'} | "
            f"{r['default']:.3f} | {r['default'] / r['fb']:.1f} | {cell(r['ig'])} | "
            f"{cell(ratio_ig)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="32,128,512")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ig-max", type=int, default=128)
    parser.add_argument("--models", default="minilm-sst2,bert-base-random")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "end_to_end.md"))
    args = parser.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    rows = []
    for name in args.models.split(","):
        model, tok = gaflow.load_model("minilm-sst2")
        if name == "bert-base-random":
            model = bert_base(tok)
        rows += measure(name, model, tok, lengths, args.repeat, args.ig_max)

    lines = [
        f"Machine: {machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads)", "",
        f"Command: `python benchmarks/end_to_end.py --lengths {args.lengths} --repeat "
        f"{args.repeat} --ig-max {args.ig_max} --models {args.models}`", "",
        "Seconds (median). `AGF total` = capture (the tensor formed in the pass) + solve; "
        "`explain` is `gaflow.explain` (tokenisation and result building included). Targets "
        "of issue 16: explain within 10% of its parts, explain ≤ 3 × fwd+bwd at t = 128 and "
        "≤ 6 s at t = 512. 1-minute load average at the end of the run: "
        f"{os.getloadavg()[0]:.1f} (a shared machine: seconds are noisy).", "",
        *table(rows),
    ]
    out = Path(args.out)
    if out.exists():  # earlier runs stay: this one is appended under its own heading
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        with out.open("a") as fh:
            fh.write("\n## Run of " + stamp + " UTC\n\n" + "\n".join(lines) + "\n")
        print(f"appended to {out}")
    else:
        title = "# End to end: AGF explanation vs forward+backward and Integrated Gradients"
        out.write_text(title + "\n\n" + "\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
