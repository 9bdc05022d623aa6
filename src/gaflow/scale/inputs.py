"""The input of ``explain-dataset``: a dataset known to :mod:`gaflow.data` or a local file.

:func:`load_input` returns an :class:`Items`: parallel lists ``ids`` (str, unique), ``texts``
(str) and ``labels`` (int or ``None``), plus ``source``, the description that goes into the
output's configuration stamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

FILE_KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
              ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Items:
    ids: list[str]
    texts: list[str]
    labels: list[int | None]
    source: dict

    def __len__(self) -> int:
        return len(self.ids)


def load_input(source: str, *, split: str | None = None, text_column: str | None = None,
               id_column: str | None = None, label_column: str | None = None,
               data_path=None, limit: int | None = None) -> Items:
    """The examples of ``source``: a dataset name (``sst2``, ``imdb``, ...; ``split`` default:
    the held-out split) or a CSV / TSV / JSONL / Parquet file (``text_column`` default
    ``text``; ids from ``id_column``, else the row number). ``limit``: the first N only."""
    from ..data import DATASETS, load_dataset

    if not isinstance(source, str) or not source.strip():
        raise InputError("the input must be a dataset name or a file path")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}")
    path = Path(source).expanduser()
    if source in DATASETS and not path.is_file():
        if text_column or id_column or label_column:
            raise InputError("--text-column, --id-column and --label-column apply to files, not "
                             f"to the dataset {source!r}")
        split = split or {"sst2": "dev"}.get(source, "test")
        ds = load_dataset(source, split, data_path)
        n = len(ds) if limit is None else min(limit, len(ds))
        items = Items(list(ds.ids[:n]), list(ds.texts[:n]), [int(x) for x in ds.labels[:n]],
                      {"dataset": source, "split": split})
    else:
        if split is not None:
            raise InputError(f"--split applies to a dataset name ({', '.join(DATASETS)}), not "
                             f"to the file {source!r}")
        items = _read_file(path, source, text_column or "text", id_column, label_column, limit)
    _check_ids(items)
    return items


def _read_file(path: Path, source: str, text_column: str, id_column, label_column,
               limit) -> Items:
    from ..data import DATASETS

    if not path.is_file():
        raise InputError(f"{source!r} is neither a file nor a known dataset "
                         f"({', '.join(DATASETS)})")
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"cannot read {path.name}: expected a .csv, .tsv, .jsonl or .parquet "
                         "file")
    import pandas as pd

    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        elif kind == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str,
                                keep_default_na=False)
    except (ValueError, OSError, ImportError) as exc:
        raise InputError(f"cannot read {path} as {kind}: {exc}") from None
    for name, col in (("--text-column", text_column), ("--id-column", id_column),
                      ("--label-column", label_column)):
        if col is not None and col not in frame.columns:
            raise InputError(f"{path.name} has no column {col!r} ({name}); columns: "
                             f"{', '.join(map(str, frame.columns))}")
    if limit is not None:
        frame = frame.iloc[:limit]
    texts = ["" if _missing(t) else str(t) for t in frame[text_column]]
    ids = ([str(i) for i in frame[id_column]] if id_column else
           [str(k) for k in range(len(frame))])
    labels = [None] * len(texts)
    if label_column:
        labels = []
        for k, v in enumerate(frame[label_column]):
            try:
                labels.append(None if _missing(v) or v == "" else int(v))
            except (TypeError, ValueError):
                raise InputError(f"{path.name} row {k}: label {v!r} is not a class index "
                                 "(integer)") from None
    source_info = {"file": str(path.resolve()), "text_column": text_column,
                   "id_column": id_column, "label_column": label_column}
    return Items(ids, texts, labels, source_info)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _check_ids(items: Items) -> None:
    if not items.ids:
        raise InputError("the input holds no examples")
    seen: set[str] = set()
    for i in items.ids:
        if i in seen:
            raise InputError(f"id {i!r} occurs twice in the input; ids must be unique (they "
                             "are how a run resumes)")
        seen.add(i)
