"""Command line, one function per subcommand (dispatched by argparse ``set_defaults``):

* ``gaflow explain TEXT``: attribute a classifier's prediction to its tokens (``--generate``:
  the same as ``gaflow generate``);
* ``gaflow generate PROMPT``: attribute each token a decoder / encoder-decoder generates;
* ``gaflow methods``: every registered attribution method, one line each;
* ``gaflow models``: the zoo models and their recorded accuracy;
* ``gaflow train NAME --out DIR``: fine-tune a zoo model from its recipe;
* ``gaflow evaluate-model NAME --dataset D``: a model's accuracy on a dataset split;
* ``gaflow bench --dataset D --out DIR``: the faithfulness benchmark (``--workers N``: on Ray);
* ``gaflow explain-dataset INPUT --out DIR``: a whole corpus on Ray, Parquet rows
  (:mod:`gaflow.scale.cli`);
* ``gaflow serve``: the local web explorer.

Errors are one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import validate
from .errors import GaflowError
from .flow.constructions import DEFAULT_METHOD


def _residual(text: str) -> float | str:
    """--residual: a number or the word 'gradient'."""
    if text == "gradient":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1] or 'gradient', got {text!r}") from None

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaflow", description="Generalized Attention Flow")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("explain", help="attribute a classifier's prediction to its tokens")
    ex.add_argument("text", help="the text to explain")
    ex.add_argument(
        "--model",
        default=None,
        help="zoo name (default: minilm-sst2), hub id or local model directory",
    )
    ex.add_argument(
        "--method",
        default=None,
        help=f"{DEFAULT_METHOD} (default), the paper's agf, af, gf, or a baseline (attention, "
        "rollout, gae, attcat, integrated_gradients, ...: README); a comma list (agf,af,gf) "
        "shows them side by side (table, html) or as a JSON list",
    )
    ex.add_argument("--target", default=None, help="class index or label name (default: predicted)")
    ex.add_argument(
        "--outputs",
        default="all",
        choices=["all", "first"],
        help="last-layer tokens linked to the sink (default: all)",
    )
    ex.add_argument(
        "--mu",
        type=float,
        default=None,
        help="barrier weight (default: central maximum flow, mu -> 0)",
    )
    ex.add_argument("--truncate", action="store_true", help="cut texts longer than the model limit")
    _backend_options(ex)
    ex.add_argument(
        "--format",
        default="table",
        choices=["table", "json", "html", "svg"],
        dest="fmt",
        help="table (terminal), json, html (self-contained heat-map), svg (flow graph, first "
        "method)",
    )
    ex.add_argument("--top-k", type=int, default=150, help="svg: edges drawn (largest flows)")
    ex.add_argument("--generate", action="store_true",
                    help="TEXT is a prompt: the same as 'gaflow generate TEXT'")
    _generation_options(ex, "--generate: ")
    _output_options(ex)
    ex.set_defaults(func=_explain)

    ge = sub.add_parser("generate", help="attribute each token a decoder / encoder-decoder "
                        "generates to the prompt and the earlier tokens")
    ge.add_argument("text", help="the prompt (the source text for an encoder-decoder)")
    ge.add_argument("--model", required=True,
                    help="causal LM or seq2seq: hub id or local model directory")
    ge.add_argument("--method", default="agf", help="agf (default), af or gf")
    ge.add_argument("--mu", type=float, default=None,
                    help="barrier weight (default: central maximum flow, mu -> 0)")
    ge.add_argument("--format", default="table", choices=["table", "json"], dest="fmt")
    _backend_options(ge)
    _generation_options(ge, "")
    _output_options(ge)
    ge.set_defaults(func=_generate)

    sub.add_parser("methods", help="list every registered attribution method").set_defaults(
        func=_methods)

    tr = sub.add_parser("train", help="fine-tune a zoo model from its recipe (LoRA + head)")
    tr.add_argument("name", help="recipe: " + ", ".join(_zoo_names()))
    tr.add_argument("--out", required=True, help="folder for the artifact (refuses to overwrite)")
    tr.add_argument("--data", default=None, help="local data folder (default: $GAFLOW_DATA)")
    tr.add_argument("--max-examples", type=int, default=None, help="train on the first N only")
    tr.add_argument("--epochs", type=float, default=None, help="override the recipe's epochs")
    tr.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    tr.add_argument("--eval-n", type=int, default=None, help="evaluate on the first N only")
    tr.add_argument("--force", action="store_true", help="allow --out to be an existing folder")
    tr.set_defaults(func=_train)

    ev = sub.add_parser("evaluate-model", help="accuracy of a model on a dataset split")
    ev.add_argument("name", help="zoo name, trained folder, hub id or local model directory")
    ev.add_argument("--dataset", required=True, help="sst2, imdb, ag_news, yelp_polarity, ...")
    ev.add_argument("--split", default=None, help="default: the held-out split (dev or test)")
    ev.add_argument("--data", default=None, help="local data folder (default: $GAFLOW_DATA)")
    ev.add_argument("--max-length", type=int, default=None, help="tokens per text (head+tail)")
    ev.add_argument("--n", type=int, default=None, help="evaluate the first N examples only")
    ev.add_argument("--format", default="table", choices=["table", "json"], dest="fmt")
    ev.set_defaults(func=_evaluate)

    sub.add_parser("models", help="list the zoo models and their recorded accuracy").set_defaults(
        func=_models)

    be = sub.add_parser("bench", help="faithfulness benchmark: methods x AOPC/LOdds/ERASER")
    be.add_argument("--model", default="minilm-sst2", help="zoo name, folder or hub id")
    be.add_argument("--dataset", required=True, help="sst2, imdb, ag_news, yelp_polarity, ...")
    be.add_argument("--split", default=None, help="default: the held-out split")
    be.add_argument("--methods", default="all", help="comma list, or all")
    be.add_argument("--n", type=int, default=500, help="examples (seeded sample)")
    be.add_argument("--out", required=True, help="output folder (cache, tables, plots)")
    be.add_argument("--data", default=None, help="local data folder (default: $GAFLOW_DATA)")
    be.add_argument("--seed", type=int, default=0)
    be.add_argument("--modes", default="delete,pad", help="perturbations: delete,pad,mask")
    be.add_argument("--max-length", type=int, default=None, help="tokens per text")
    be.add_argument("--batch-size", type=int, default=8)
    be.add_argument("--fresh", action="store_true", help="discard cached results in --out")
    be.add_argument("--no-progress", action="store_true")
    be.add_argument("--workers", type=int, default=None,
                    help="run on N Ray actors (pip install 'gaflow[ray]'); default: this process")
    be.add_argument("--address", default=None, help="with --workers: join this Ray cluster")
    be.set_defaults(func=_bench)

    from .scale.cli import add_parser as add_explain_dataset

    add_explain_dataset(sub)

    sv = sub.add_parser("serve", help="local web explorer (heat-map, flow graph)")
    sv.add_argument("--model", default=None, help="zoo name (default: minilm-sst2), path or hub id")
    sv.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--queue", type=int, default=4,
                    help="explanations that may wait behind the running one; more get 503 "
                    "(default: 4)")
    sv.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a request waits for its explanation, else 503 (default: 60)")
    sv.set_defaults(func=_serve)
    return parser


def _generation_options(p: argparse.ArgumentParser, prefix: str) -> None:
    p.add_argument("--max-new-tokens", type=int, default=8, help=f"{prefix}tokens to generate")
    p.add_argument("--continuation", default=None, help=f"{prefix}score this text instead")
    p.add_argument("--exclude-first", action="store_true",
                   help=f"{prefix}leave the first (attention-sink) position out")
    p.add_argument("--residual", type=_residual, default=None,
                   help=f"{prefix}share of each node's own stream kept (0..1), or 'gradient' "
                        "(self-edge measured by gradient x activation); default: 'gradient' "
                        "where the architecture supports it, else 0")


def _backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="numpy", choices=["numpy", "torch"],
                   help="flow solver: numpy (default) or torch (batched; see --device)")
    p.add_argument("--device", default=None, help="torch device for --backend torch (cpu, cuda)")


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=None,
                   help="write to this file (refuses to overwrite)")
    p.add_argument("--force", action="store_true", help="allow -o to overwrite an existing file")


def _zoo_names() -> list[str]:
    from .models.zoo import ZOO

    return list(ZOO)


def _train(args) -> int:
    from .models.zoo import train_recipe

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise GaflowError(f"{out} exists and is not empty; pass --force to overwrite it")
    over = {k: v for k, v in (("max_examples", args.max_examples), ("epochs", args.epochs),
                              ("seed", args.seed)) if v is not None}
    meta = train_recipe(args.name, out, data_path=args.data, log=print, eval_n=args.eval_n, **over)
    print(json.dumps({k: meta[k] for k in ("name", "evaluation", "train_seconds")}, indent=2))
    return 0


def _evaluate(args) -> int:
    from . import load_model
    from .data import default_split, load_dataset
    from .models.zoo import evaluate, inference_length

    split = args.split or default_split(args.dataset)
    ds = load_dataset(args.dataset, split, args.data)
    if args.n is not None:
        ds = ds.subset(range(min(args.n, len(ds))))
    model, tokenizer = load_model(args.name)
    max_length = args.max_length if args.max_length is not None else inference_length(args.name)
    res = evaluate(model, tokenizer, ds, max_length)
    res["model"] = args.name
    if args.fmt == "json":
        print(json.dumps(res, indent=2))
    else:
        print(f"{args.name} on {res['dataset']}/{res['split']}: accuracy {res['accuracy']:.4f} "
              f"(n={res['n']}, max_length={res['max_length']}, {res['seconds']:.1f} s)")
    return 0


def _generate(args) -> int:
    from .generation import explain_generation, generation_table, load_generator

    if args.output:
        validate.output_path(args.output, args.force)
    if args.fmt not in ("table", "json"):
        raise GaflowError("--generate writes --format table or json")
    model, tokenizer = load_generator(args.model)
    exp = explain_generation(
        model, tokenizer, args.text, max_new_tokens=args.max_new_tokens,
        method=args.method or "agf", continuation=args.continuation,
        exclude_first=args.exclude_first,
        residual=args.residual, mu=args.mu, backend=args.backend, device=args.device,
    )
    text = exp.to_json(indent=2) + "\n" if args.fmt == "json" else generation_table(exp)
    _write(args.output, text)
    return 0


def _write(output: str | None, text: str) -> None:
    """Write to ``-o`` (checked by :func:`validate.output_path` before the work) or stdout."""
    if not output:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:  # the file system changed since the check
        raise GaflowError(f"cannot write {output}: {exc.strerror or exc}") from None


def _bench(args) -> int:
    from .evaluation.benchmark import BenchConfig, run_benchmark
    from .methods import method_names

    methods = method_names() if args.methods == "all" else [
        m.strip() for m in args.methods.split(",") if m.strip()]
    cfg = BenchConfig(
        model=args.model, dataset=args.dataset, methods=methods, n=args.n, split=args.split,
        seed=args.seed, modes=[m.strip() for m in args.modes.split(",") if m.strip()],
        max_length=args.max_length, batch_size=args.batch_size,
    )
    if args.address and args.workers is None:
        raise GaflowError("--address needs --workers")
    summary = run_benchmark(cfg, args.out, data_path=args.data, progress=not args.no_progress,
                            fresh=args.fresh, workers=args.workers, address=args.address)
    out = Path(args.out)
    table = (out / "results.md").read_text()
    wall = summary["wall_seconds"]
    print(f"{table}\nwall time {wall:.1f} s; wrote {out}/results.{{md,csv,json}} and plots")
    return 0


def _models(args) -> int:
    from .models.zoo import ZOO, artifact_dir, read_meta

    lines = ["name            dataset         split  n      accuracy  train time"]
    for name in ZOO:
        try:
            meta = read_meta(artifact_dir(name))
        except GaflowError:
            lines.append(f"{name:15} (artifact missing)")
            continue
        ev = meta["evaluation"]
        lines.append(f"{name:15} {ev['dataset']:15} {ev['split']:6} {ev['n']:<6} "
                     f"{ev['accuracy']:.4f}    {meta['train_seconds']:.0f} s")
    print("\n".join(lines))
    return 0


def _methods(args) -> int:
    from .methods import list_methods

    ms = list_methods()
    width = max(len(m.name) for m in ms)
    for m in ms:  # name, kind, what it is, and the explain options it takes
        takes = f" [options: {', '.join(m.options)}]" if m.options else ""
        print(f"{m.name:{width}}  {m.kind:8}  {m.summary()}{takes}")
    return 0


def _serve(args) -> int:
    from .server import serve

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"gaflow: warning: serving on {args.host}, reachable from other machines",
              file=sys.stderr)
    if args.queue < 0 or not 0 < args.timeout < float("inf"):
        raise GaflowError("--queue must be >= 0 and --timeout a positive number of seconds")
    serve(args.model, host=args.host, port=args.port, queue_size=args.queue,
          timeout=args.timeout)
    return 0


def _table(exp) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    top = max((abs(s) for s in exp.scores), default=0.0) or 1.0
    table = Table(
        title=f"{exp.method} attributions · target {exp.target_label} "
        f"(p={exp.probability:.3f}) · flow {exp.flow_value:.4g}"
    )
    table.add_column("#", justify="right")
    table.add_column("token")
    table.add_column("score", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    for k, (tok, score) in enumerate(zip(exp.tokens, exp.scores, strict=True)):
        bar = "█" * int(round(20 * abs(score) / top))
        style = "dim" if exp.special[k] else ("green" if score >= 0 else "red")
        shares = exp.flow_value > 0 and min(exp.scores) >= 0  # flow methods; signed: no share
        share = f"{score / exp.flow_value:.1%}" if shares else "–"
        table.add_row(str(k), tok, f"{score:.4g}", share, f"[{style}]{bar}[/{style}]")
    buf = StringIO()
    console = Console(file=buf, force_terminal=sys.stdout.isatty(), width=100)
    console.print(table)
    words = "  ".join(f"{w}:{s:.3g}" for w, s in exp.words())
    console.print(f"words: {words}")
    return buf.getvalue()


def _explain(args) -> int:
    from . import explain, load_model
    from .methods import get_method
    from .methods.base import OPTION_DEFAULTS

    if args.generate:
        return _generate(args)
    if args.output:  # before any work: a bad path must not cost a whole computation
        validate.output_path(args.output, args.force)
    validate.mu(args.mu)
    validate.device(args.backend, args.device)
    methods = [m.strip() for m in (args.method or DEFAULT_METHOD).split(",") if m.strip()]
    if not methods:
        raise GaflowError("--method is empty")
    if args.continuation or args.residual is not None or args.exclude_first:
        raise GaflowError("--continuation, --residual and --exclude-first need --generate")
    chosen = [get_method(m) for m in methods]
    if args.fmt == "svg" and chosen[0].kind != "flow":
        raise GaflowError(f"--format svg draws a flow: use a flow method ({DEFAULT_METHOD}, "
                          f"agf, af, gf), not {methods[0]}")
    model, tokenizer = load_model(args.model)
    options = {"outputs": args.outputs, "mu": args.mu, "backend": args.backend,
               "device": args.device}
    for name, value in options.items():  # a set option must apply to one method at least
        if value != OPTION_DEFAULTS[name] and not any(name in m.options for m in chosen):
            chosen[0].check_options({name: value})
    exps = [  # in a list, each method takes the options that apply to it (gaflow methods)
        explain(model, tokenizer, args.text, method=m.name, target=args.target,
                truncation=args.truncate, keep_flows=args.fmt == "svg" and k == 0,
                **{n: v for n, v in options.items() if n in m.options})
        for k, m in enumerate(chosen)
    ]
    if args.fmt == "json":
        docs = [e.to_dict() for e in exps]
        text = json.dumps(docs[0] if len(docs) == 1 else docs, indent=2) + "\n"
    elif args.fmt == "html":
        text = exps[0].to_html(exps[1:], title=f"gaflow · {args.model or 'minilm-sst2'}")
    elif args.fmt == "svg":
        text = exps[0].flow_figure(top_k=args.top_k).to_svg()
    else:
        text = "".join(_table(e) for e in exps)
    _write(args.output, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except GaflowError as exc:
        print(f"gaflow: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (``gaflow methods | head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second one at exit
        return 141  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
