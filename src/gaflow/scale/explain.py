"""``gaflow.explain_dataset``: explain every example of a corpus on Ray Data.

Pipeline: the input's rows ``{id, text, label}`` -> ``ray.data.from_items`` (one block per
batch) -> ``map_batches(ExplainWorker, compute=ActorPoolStrategy(size=workers))``: each actor
loads the model once and turns a batch into :func:`~gaflow.scale.records.schema` rows -> the
driver streams the rows back (``iter_batches``) and writes them as Parquet parts, so an
interrupted run keeps what it wrote and the next run skips those ids.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import validate
from ..errors import GaflowError, InputError
from ..flow.constructions import DEFAULT_METHOD
from .inputs import load_input
from .records import OutputFolder, error_row, explanation_row, to_table
from .runtime import (
    check_resources,
    check_workers,
    data_context,
    quiet_ray_data,
    ray_session,
    require_ray,
)

FLUSH_ROWS = 1024  # rows per Parquet part (at most; also flushed every FLUSH_SECONDS)
FLUSH_SECONDS = 30.0


class ExplainWorker:
    """A Ray Data actor: the model is loaded once in ``__init__``; ``__call__`` maps a batch
    (Arrow table with ``id``, ``text``, ``label``) to an Arrow table of result rows, one per
    input row. A batch that fails is redone one text at a time, so one bad example gives one
    error row and the others their explanations."""

    def __init__(self, model_name, options: dict, device: str | None = None,
                 crash: dict | None = None):
        from .. import load_model
        from ..api import _model_limit, _n_special

        self.model, self.tokenizer = load_model(model_name)
        if device:
            self.model.to(device)
        self.options = options
        self.crash = crash
        # configuration errors stop the run here instead of turning every row into an error
        validate.target(self.model.config, options["target"])
        validate.max_length(options["max_length"], _n_special(self.tokenizer),
                            _model_limit(self.model, self.tokenizer))

    def __call__(self, batch):
        from .. import explain

        ids = [str(i) for i in batch.column("id").to_pylist()]
        texts = batch.column("text").to_pylist()
        labels = batch.column("label").to_pylist()
        self._maybe_crash(ids)
        method = self.options["method"]
        try:
            exps = explain(self.model, self.tokenizer, texts, batch_size=len(texts),
                           **self.options)
            rows = [explanation_row(i, lab, e) for i, lab, e in zip(ids, labels, exps,
                                                                   strict=True)]
        except Exception:  # noqa: BLE001 - find the bad example(s): one text at a time
            rows = []
            for i, text, lab in zip(ids, texts, labels, strict=True):
                try:
                    exp = explain(self.model, self.tokenizer, text, **self.options)
                    rows.append(explanation_row(i, lab, exp))
                except Exception as exc:  # noqa: BLE001 - reported in the row, not dropped
                    rows.append(error_row(i, "" if text is None else str(text), lab, method,
                                          exc))
        return to_table(rows)

    def _maybe_crash(self, ids):
        """Test hook: exit this actor's process once when ``crash['id']`` is in the batch
        (``crash['marker']`` records that it happened)."""
        if not self.crash or self.crash["id"] not in ids:
            return
        marker = Path(self.crash["marker"])
        if not marker.exists():
            marker.write_text("crashed\n")
            os._exit(1)


@dataclass
class RunSummary:
    """What :func:`explain_dataset` did. ``os.PathLike``: it stands for the output folder
    (``pandas.read_parquet(summary)``).

    Times (seconds from the start of the run): ``seconds`` in all, ``startup_seconds`` to start
    or join Ray, ``first_rows_seconds`` / ``last_rows_seconds`` when the first / last results
    came back (the first includes the actors' start and model load)."""

    path: Path
    total: int
    written: int
    skipped: int
    failed: int
    seconds: float
    startup_seconds: float = 0.0
    first_rows_seconds: float | None = None
    last_rows_seconds: float | None = None
    workers: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.path)

    def line(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else float("nan")
        return (f"{self.written} written ({self.failed} failed), {self.skipped} skipped "
                f"(already in {self.path}); {self.total} examples; {self.seconds:.1f} s, "
                f"{rate:.2f} examples/s with {self.workers} workers")

    def dataset(self):
        """The output as a Ray Dataset (``ray.data.read_parquet``)."""
        ray = require_ray()
        return ray.data.read_parquet(str(self.path))


def check_options(method: str, outputs, mu, batch_size, max_length, truncation,
                  target) -> tuple[dict, int]:
    """The explain options, checked without a model by the method's own rule (the rest is
    checked by each actor)."""
    from ..methods import get_method
    from ..methods.base import method_options

    validate.name(method, "method")
    chosen = get_method(method)  # UnknownNameError lists the registered methods
    batch_size = validate.positive_int(batch_size, "batch_size")
    truncation = validate.flag(truncation, "truncation")
    method_options(chosen, outputs=outputs, mu=mu)
    outputs, mu = validate.explain_outputs(outputs), validate.mu(mu)
    if max_length is not None:
        validate.positive_int(max_length, "max_length")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | str)):
        raise InputError(f"target must be a class index or label name, got {target!r}")
    return {"method": method, "target": target, "outputs": outputs, "mu": mu,
            "truncation": truncation, "max_length": max_length}, batch_size


def explain_dataset(source: str, out, *, model: str | None = None, method: str = DEFAULT_METHOD,
                    workers: int | None = None, address: str | None = None,
                    gpus_per_worker: float = 0, batch_size: int = 16,
                    max_length: int | None = None, truncation: bool = False,
                    target: int | str | None = None, outputs="all", mu: float | None = None,
                    split: str | None = None, text_column: str | None = None,
                    id_column: str | None = None, label_column: str | None = None,
                    data_path=None, limit: int | None = None, fresh: bool = False,
                    progress: bool = False, retries: int = 2, _crash: dict | None = None,
                    ) -> RunSummary:
    """Explain every example of ``source`` on Ray and write one Parquet row per example.

    Args:
        source: a dataset name known to :mod:`gaflow.data` (``split``: default the held-out
            split) or a CSV / TSV / JSONL / Parquet file (``text_column``, default ``text``;
            ``id_column``, default the row number; optional integer ``label_column``).
        out: the output folder; rerunning with the same configuration skips the ids it holds,
            another configuration is refused unless ``fresh=True`` (which discards the rows).
        model: zoo name, trained folder, hub id or local model directory (each actor loads it;
            on a cluster a folder must exist at the same absolute path on every node).
        method, target, outputs, mu, max_length, truncation: as in :func:`gaflow.explain`.
        workers: actors (one model each); default the CPU count. ``address`` (or
            ``$RAY_ADDRESS``) joins that Ray cluster, else a local Ray with ``workers`` CPUs
            starts and stops here; an already initialised Ray is used as is.
        gpus_per_worker: GPUs per actor (the model moves to ``cuda``); 0 = CPU actors.
        batch_size: texts per actor call (and per forward pass).
        limit: the first N examples only (not part of the configuration: raise it to extend).
        retries: reruns of the remaining ids when Ray gives up on the pipeline (Ray itself
            restarts a dead actor and retries its batch first).

    Returns:
        a :class:`RunSummary` (written / skipped / failed counts; ``os.PathLike``: the folder).
    """
    ray = require_ray()
    options, batch_size = check_options(method, outputs, mu, batch_size, max_length,
                                        truncation, target)
    workers = check_workers(workers, gpus_per_worker)
    items = load_input(source, split=split, text_column=text_column, id_column=id_column,
                       label_column=label_column, data_path=data_path, limit=limit)
    from ..api import DEFAULT_MODEL

    model = str(model or DEFAULT_MODEL)
    if Path(model).expanduser().exists():  # a folder: the actors' working directory differs
        model = str(Path(model).expanduser().resolve())
    key = {"input": items.source, "model": model, **options,
           "outputs": options["outputs"] if isinstance(options["outputs"], str)
           else list(options["outputs"])}
    folder = OutputFolder(out, key, fresh=fresh)
    done = folder.done()
    todo = [k for k, i in enumerate(items.ids) if i not in done]
    summary = RunSummary(folder.path, len(items), 0, len(items) - len(todo), 0, 0.0,
                         workers=workers)
    if not todo:
        return summary
    from ..evaluation.benchmark import _progress

    t0 = time.perf_counter()
    with ray_session(workers, address) as session, quiet_ray_data():
        summary.startup_seconds = session.seconds
        check_resources(ray, workers, gpus_per_worker)
        data_context(ray, workers)
        with _progress(progress) as bar:
            task = bar.add_task("explain", total=len(todo))
            for attempt in range(retries + 1):
                try:
                    _run(ray, items, todo, folder, summary, options, model, workers,
                         gpus_per_worker, batch_size, _crash,
                         lambda n: bar.advance(task, n), t0)
                    break
                except (GaflowError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # noqa: BLE001 - Ray gave up: resume what is left
                    written = set(folder.done())
                    todo = [k for k in todo if items.ids[k] not in written]
                    if "gaflow.errors." in str(exc):  # a configuration error in the actors
                        raise GaflowError(_ray_message(exc)) from None
                    if not todo:  # every row was written before the pipeline failed
                        break
                    if attempt == retries:
                        raise GaflowError(
                            f"the Ray pipeline failed ({_ray_message(exc)}); {len(todo)} "
                            f"examples are not written yet: rerun the same command to resume"
                        ) from None
    summary.seconds = time.perf_counter() - t0
    return summary


def _run(ray, items, todo, folder, summary, options, model, workers, gpus, batch_size, crash,
         advance, t0: float) -> None:
    rows_in = [{"id": items.ids[k], "text": items.texts[k], "label": items.labels[k]}
               for k in todo]
    blocks = max(1, min(10000, -(-len(rows_in) // batch_size)))
    device = "cuda" if gpus else None
    ds = ray.data.from_items(rows_in, override_num_blocks=blocks).map_batches(
        ExplainWorker, batch_size=batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"model_name": model, "options": options, "device": device,
                               "crash": crash},
        num_cpus=0 if gpus else 1, num_gpus=gpus or None,
    )
    buffer: list[dict] = []
    last = time.perf_counter()

    def flush():
        nonlocal buffer, last
        folder.write(buffer)
        buffer, last = [], time.perf_counter()

    try:
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            now = time.perf_counter() - t0
            if summary.first_rows_seconds is None:
                summary.first_rows_seconds = now
            summary.last_rows_seconds = now
            rows = table.to_pylist()
            for r in rows:
                if r["error"] is not None:
                    summary.failed += 1
                    summary.errors.append((r["id"], r["error"]))
            summary.written += len(rows)
            buffer.extend(rows)
            advance(len(rows))
            if len(buffer) >= FLUSH_ROWS or time.perf_counter() - last > FLUSH_SECONDS:
                flush()
    finally:
        flush()
    _check_complete(items, todo, folder)


def _check_complete(items, todo, folder) -> None:
    written = folder.done()
    missing = [items.ids[k] for k in todo if items.ids[k] not in written]
    if missing:
        raise RuntimeError(f"{len(missing)} examples came back without a row "
                           f"(first: {missing[0]!r})")


def _ray_message(exc: BaseException) -> str:
    """The cause of a Ray failure, short: a gaflow error raised in an actor keeps its text."""
    text = str(exc).strip().splitlines()
    for line in reversed(text):
        if line.startswith("gaflow.errors."):
            return line.split(": ", 1)[-1].strip()
    for line in reversed(text):
        if "Error:" in line or "error:" in line:
            return line.strip()[:500]
    return (text[-1] if text else exc.__class__.__name__)[:500]
