"""Solver regression graphs from small trained decoders (issue 16).

Trains 2-layer GPT-2 decoders (as tests/planted.py) on four content-dependent tasks (copy,
reverse, sort, rotate by one), records every graph that ``explain_generation`` hands to
``solve_flow`` (12 prompts, 4 generated tokens, ``residual`` 0 and 0.5: 384 graphs) and keeps
the ``KEEP`` whose positive capacities span the most orders of magnitude in
``tests/data/generation_graphs.npz``. Run from the repository root (a few minutes on 2 cores):
``PYTHONPATH=src python tests/data/make_generation_graphs.py``.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, "tests")

from planted import LENGTH, SPECIAL, SYMBOLS, tokenizer  # noqa: E402

import gaflow.generation.driver as gen  # noqa: E402

KEEP = 24
TASKS = {
    "copy": lambda x: x,
    "reverse": lambda x: x[:, ::-1],
    "sorted": lambda x: np.sort(x, axis=1),
    "rotate": lambda x: np.roll(x, 1, axis=1),
}


def train(task, seed=0, steps=500):
    """``[BOS] x1..x4 [SEP] task(x)``, next-token loss on the answer."""
    import transformers as tf

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = tf.GPT2Config(vocab_size=len(SPECIAL) + len(SYMBOLS), n_positions=24, n_embd=64,
                        n_layer=2, n_head=4, bos_token_id=2, eos_token_id=4, pad_token_id=0,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        attn_implementation="eager")
    model = tf.GPT2LMHeadModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x = rng.integers(len(SPECIAL), len(SPECIAL) + len(SYMBOLS), size=(64, LENGTH))
        ids = torch.tensor(np.concatenate([np.full((64, 1), 2), x, np.full((64, 1), 3), task(x)],
                                          1))
        logits = model(input_ids=ids).logits[:, LENGTH + 1: -1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 ids[:, LENGTH + 2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float(loss.detach())


def collect() -> list:
    seen = []
    real = gen.solve_flow

    def record(caps, outputs=None, mu=None, tokens=None, rtol=1e-6, **kw):
        n = len(caps)  # explain_generation solves all its graphs in one batched call
        for c, o, m in zip(caps, outputs or [None] * n, tokens or [None] * n, strict=True):
            seen.append((np.array(c, dtype=float), None if o is None else np.array(o),
                         None if m is None else np.array(m)))
        return real(caps, outputs, mu=mu, tokens=tokens, rtol=rtol, **kw)

    gen.solve_flow = record
    tok = tokenizer()
    rng = np.random.default_rng(99)
    for name, task in TASKS.items():
        model, loss = train(task)
        print(name, "loss", round(loss, 3), flush=True)
        prompts = [" ".join(["[BOS]"] + [SYMBOLS[i] for i in rng.integers(0, 10, LENGTH)]
                            + ["[SEP]"]) for _ in range(12)]
        for residual in (0.0, 0.5):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gen.explain_generation(model, tok, prompts, max_new_tokens=LENGTH,
                                       residual=residual)
    gen.solve_flow = real
    return seen


def keep(seen: list, path="tests/data/generation_graphs.npz") -> None:
    spans = []
    for c, _, _ in seen:
        pos = c[c > 0]
        spans.append(pos.max() / pos.min() if pos.size else 1.0)
    out = {}
    for n, k in enumerate(np.argsort(spans)[::-1][:KEEP]):
        c, o, m = seen[k]
        out[f"caps{n}"] = c
        if o is not None:
            out[f"outputs{n}"] = o
        if m is not None:
            out[f"tokens{n}"] = m
    np.savez_compressed(path, n=KEEP, **out)
    print(f"graphs {len(seen)}, kept {KEEP}: spans {sorted(spans)[-KEEP]:.1e}..{max(spans):.1e}")


if __name__ == "__main__":
    keep(collect())
