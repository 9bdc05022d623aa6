"""Command line: ``gaflow explain "TEXT" --model NAME_OR_PATH``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import GaflowError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaflow", description="Generalized Attention Flow")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("explain", help="attribute a classifier's prediction to its tokens")
    ex.add_argument("text", help="the text to explain")
    ex.add_argument(
        "--model",
        required=True,
        help="Hugging Face hub id or local model directory (a sequence classifier)",
    )
    ex.add_argument("--method", default="agf", help="information tensor: agf (default), af, gf")
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
    ex.add_argument("--format", default="table", choices=["table", "json"], dest="fmt")
    ex.add_argument(
        "-o", "--output", default=None, help="write to this file (refuses to overwrite)"
    )
    ex.add_argument("--force", action="store_true", help="allow -o to overwrite an existing file")
    return parser


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
        share = score / exp.flow_value if exp.flow_value else 0.0
        table.add_row(str(k), tok, f"{score:.4g}", f"{share:.1%}", f"[{style}]{bar}[/{style}]")
    buf = StringIO()
    console = Console(file=buf, force_terminal=sys.stdout.isatty(), width=100)
    console.print(table)
    words = "  ".join(f"{w}:{s:.3g}" for w, s in exp.words())
    console.print(f"words: {words}")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from . import explain, load_model

        if args.output and Path(args.output).exists() and not args.force:
            raise GaflowError(f"{args.output} exists; pass --force to overwrite it")
        model, tokenizer = load_model(args.model)
        exp = explain(
            model,
            tokenizer,
            args.text,
            method=args.method,
            target=args.target,
            outputs=args.outputs,
            mu=args.mu,
            truncation=args.truncate,
        )
        text = exp.to_json(indent=2) + "\n" if args.fmt == "json" else _table(exp)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    except GaflowError as exc:
        print(f"gaflow: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
