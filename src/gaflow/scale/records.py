"""The output folder of ``explain-dataset``: Parquet parts, one row per example, and a stamp.

Layout: ``<out>/_gaflow_run.json`` (the configuration the rows were computed with) and
``<out>/part-NNNNN-XXXXXXXX.parquet`` files of :func:`schema` rows, each written to a temporary
name and renamed, so a killed run leaves whole parts only. Read the folder with
``pandas.read_parquet(out)``, ``pyarrow.parquet.read_table(out)`` or ``ray.data.read_parquet(out)``;
turn a row back into an explanation with :meth:`gaflow.Explanation.from_record`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ..errors import InputError

STAMP = "_gaflow_run.json"  # "_": skipped by pyarrow, pandas and Ray readers
FORMAT = 1
COLUMNS = ["id", "text", "tokens", "scores", "special", "word_ids", "offsets", "words",
           "word_scores", "target", "target_label", "label", "probability", "predicted",
           "flow_value", "method", "config", "error"]


def schema():
    """The Arrow schema of every part (an error row has nulls outside id, text, label,
    method and error)."""
    import pyarrow as pa

    ints = pa.list_(pa.int64())
    return pa.schema([
        ("id", pa.string()), ("text", pa.string()), ("tokens", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float64())), ("special", pa.list_(pa.bool_())),
        ("word_ids", ints), ("offsets", pa.list_(ints)), ("words", pa.list_(pa.string())),
        ("word_scores", pa.list_(pa.float64())), ("target", pa.int64()),
        ("target_label", pa.string()), ("label", pa.int64()), ("probability", pa.float64()),
        ("predicted", pa.int64()), ("flow_value", pa.float64()), ("method", pa.string()),
        ("config", pa.string()), ("error", pa.string()),
    ])


def explanation_row(id_: str, label: int | None, exp) -> dict:
    return {"id": id_, "label": label, **exp.to_record(), "error": None}


def error_row(id_: str, text: str, label: int | None, method: str, exc: BaseException) -> dict:
    row = dict.fromkeys(COLUMNS)
    msg = str(exc) or exc.__class__.__name__
    row.update(id=id_, text=text, label=label, method=method,
               error=f"{exc.__class__.__name__}: {msg}")
    return row


def to_table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema())


class OutputFolder:
    """The parts already written, the stamp check and atomic part writes."""

    def __init__(self, path, key: dict, fresh: bool = False):
        self.path = Path(path)
        self.key = {**key, "format": FORMAT}
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path} is a file, not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        stamp = self.path / STAMP
        ours = [p for p in self.path.iterdir() if p.name == STAMP or _is_part(p)]
        others = [p for p in self.path.iterdir() if p not in ours]
        if others:
            raise InputError(f"{self.path} holds files that explain-dataset did not write "
                             f"({others[0].name}, ...); choose an empty or new --out")
        if fresh:
            for p in ours:
                p.unlink()
        for tmp in self.path.glob(".part-*.tmp"):  # a part cut short by a killed run
            tmp.unlink()
        if self.parts() and stamp.exists():
            old = json.loads(stamp.read_text())
            if old != self.key:
                changed = sorted(k for k in set(old) | set(self.key)
                                 if old.get(k) != self.key.get(k))
                raise InputError(
                    f"{self.path} holds rows of another configuration (differs in: "
                    f"{', '.join(changed)}); use another --out or pass --fresh to discard them"
                )
        elif self.parts():
            raise InputError(f"{self.path} holds parts but no {STAMP}; pass --fresh")
        stamp.write_text(json.dumps(self.key, indent=2))

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def done(self) -> dict[str, bool]:
        """Per id already written: whether its row holds an error."""
        import pyarrow.parquet as pq

        out: dict[str, bool] = {}
        for p in self.parts():
            t = pq.read_table(p, columns=["id", "error"])
            for i, e in zip(t.column("id").to_pylist(), t.column("error").to_pylist(),
                            strict=True):
                out[i] = e is not None
        return out

    def write(self, rows: list[dict]) -> Path | None:
        """Write ``rows`` as one new part (temporary name, then renamed)."""
        if not rows:
            return None
        import pyarrow.parquet as pq

        n = len(self.parts())
        name = f"part-{n:05d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.path / f".{name}.tmp"
        pq.write_table(to_table(rows), tmp)
        tmp.replace(self.path / name)
        return self.path / name


def _is_part(p: Path) -> bool:
    return (p.name.startswith("part-") and p.suffix == ".parquet") or (
        p.name.startswith(".part-") and p.name.endswith(".tmp"))
