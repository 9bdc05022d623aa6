"""The ``gaflow explain-dataset`` subcommand: :func:`add_parser` and :func:`run`."""

from __future__ import annotations

import sys

from ..flow.constructions import DEFAULT_METHOD


def add_parser(subparsers):
    """Add ``explain-dataset`` to the ``gaflow`` subcommands."""
    p = subparsers.add_parser(
        "explain-dataset", help="explain every example of a dataset or file on Ray (Parquet out)",
        description="Explain a whole corpus on Ray Data (one model per worker) and write one "
        "Parquet row per example to --out; rerunning resumes.")
    p.add_argument("input", help="a dataset name (sst2, imdb, ag_news, ...; see --split) or a "
                   "local .csv / .tsv / .jsonl / .parquet file")
    p.add_argument("--out", required=True, help="output folder (Parquet parts; resumable)")
    p.add_argument("--model", default=None,
                   help="zoo name (default: minilm-sst2), folder or hub id")
    p.add_argument("--method", default=DEFAULT_METHOD, help=f"default: {DEFAULT_METHOD}")
    p.add_argument("--split", default=None, help="dataset split (default: the held-out one)")
    p.add_argument("--data", default=None, help="local data folder (default: $GAFLOW_DATA)")
    p.add_argument("--text-column", default=None, help="file input: text column (default: text)")
    p.add_argument("--id-column", default=None, help="file input: id column (default: row number)")
    p.add_argument("--label-column", default=None, help="file input: integer label column")
    p.add_argument("--limit", type=int, default=None, help="the first N examples only")
    p.add_argument("--target", default=None, help="class index or label (default: predicted)")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray actors, one model each (default: the CPU count)")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per actor (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="texts per actor call")
    p.add_argument("--max-length", type=int, default=None, help="tokens per text")
    p.add_argument("--truncate", action="store_true", help="cut texts longer than --max-length")
    p.add_argument("--fresh", action="store_true", help="discard the rows already in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``explain-dataset``; a :class:`~gaflow.errors.GaflowError` goes to the caller."""
    from .explain import explain_dataset

    target = args.target
    if target is not None and target.lstrip("-").isdigit():
        target = int(target)
    summary = explain_dataset(
        args.input, args.out, model=args.model, method=args.method, workers=args.workers,
        address=args.address, gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
        max_length=args.max_length, truncation=args.truncate, target=target, split=args.split,
        text_column=args.text_column, id_column=args.id_column, label_column=args.label_column,
        data_path=args.data, limit=args.limit, fresh=args.fresh,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    for id_, err in summary.errors[:5]:
        print(f"failed: {id_}: {err}", file=sys.stderr)
    if summary.failed > 5:
        print(f"... and {summary.failed - 5} more (the 'error' column)", file=sys.stderr)
    print(summary.line())
    return 0
