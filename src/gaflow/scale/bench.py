"""``gaflow bench --workers N``: the benchmark's (method, batch of examples) chunks on Ray.

Each chunk is one Ray Data row ``{method, chunk}`` (``chunk``: indices into the sampled
dataset). :class:`BenchWorker` actors load the model once and run
:func:`gaflow.evaluation.benchmark.bench_chunk` -- the very function of the single-process run, on
the same batches -- so the records, and the table aggregated from them, are the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

from ..errors import GaflowError
from .runtime import check_resources, data_context, quiet_ray_data, ray_session, require_ray


class BenchWorker:
    """A Ray Data actor: one model; maps rows ``{method, chunk}`` to ``{method, chunk,
    records}`` (``records``: the chunk's cache records as JSON text)."""

    def __init__(self, cfg: dict, ds):
        from .. import load_model
        from ..evaluation.benchmark import BenchConfig

        self.cfg = BenchConfig(**cfg)
        self.ds = ds
        self.model, self.tokenizer = load_model(self.cfg.model)

    def __call__(self, batch: dict) -> dict:
        from ..evaluation.benchmark import bench_chunk

        out = {"method": [], "chunk": [], "records": []}
        for method, chunk in zip(batch["method"], batch["chunk"], strict=True):
            chunk = [int(k) for k in chunk]
            recs = bench_chunk(self.model, self.tokenizer, self.ds, self.cfg, str(method), chunk)
            out["method"].append(str(method))
            out["chunk"].append(json.dumps(chunk))
            out["records"].append(json.dumps(recs))
        return out


def bench_on_ray(cfg, ds, chunks: list[tuple[str, list[int]]], workers: int,
                 address: str | None = None) -> Iterator[tuple[str, list[int], list[dict]]]:
    """Yield ``(method, chunk, records)`` for every chunk, as the actors finish them (in any
    order; the benchmark sorts its records by example afterwards)."""
    if not chunks:
        return
    ray = require_ray()
    with ray_session(workers, address) as _, quiet_ray_data():
        check_resources(ray, workers)
        data_context(ray, workers)
        items = [{"method": m, "chunk": list(c)} for m, c in chunks]
        pipeline = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            BenchWorker, batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"cfg": asdict(cfg), "ds": ds}, num_cpus=1,
        )
        try:
            for batch in pipeline.iter_batches(batch_format="numpy", batch_size=None):
                for method, chunk, recs in zip(batch["method"], batch["chunk"],
                                               batch["records"], strict=True):
                    yield str(method), json.loads(str(chunk)), json.loads(str(recs))
        except GaflowError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray gave up; the cache keeps what finished
            from .explain import _ray_message

            raise GaflowError(f"the Ray benchmark failed ({_ray_message(exc)}); rerun the same "
                              "command to resume from the cache") from None
