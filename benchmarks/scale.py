"""Throughput of ``gaflow explain-dataset`` on Ray against the plain single-process loop.

    python benchmarks/scale.py [--n 1000] [--method agf_rp] [--workers 1,2] [--repeat 2]
                               [--agf-n 200]

Input: the first ``--n`` SST-2 sentences of dev (872) then test (``$GAFLOW_DATA``), written to a
JSONL file. Model: the zoo's ``minilm-sst2``. All in one run, interleaved per repeat, so the
configurations share the machine's load of the moment:

* ``plain``: ``gaflow.explain(model, tokenizer, texts, batch_size=16)`` in this process, the model
  loaded beforehand (its load time reported apart); torch threads as ``OMP_NUM_THREADS``.
* ``ray N``: ``gaflow.explain_dataset(file, out, workers=N, batch_size=16)``: a local Ray with N
  CPUs started and stopped inside, N actors (one thread each) loading the model, Parquet written.
  Reported: the whole call (what a user waits for) and the Ray start-up; ``ray N (16 rows)`` is
  the fixed cost (Ray start-up, actor start and model load, one batch, shutdown).
* ``cpu A/B``: the CPU time (``time.process_time``) of the same 96 explanations in this process
  and in one Ray actor: the per-example work, whatever share of the shared CPU each gets.

``os.getloadavg()`` is recorded before and after each measurement (other jobs share the
machine). Writes ``benchmarks/results/scale.json`` and the tables in ``scale_measured.md``;
``scale.md`` holds them with their reading and the cluster projection. ``--report`` only
rewrites the tables from ``scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from solver import machine  # noqa: E402

import gaflow  # noqa: E402
from gaflow.data import load_dataset  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def corpus(n: int, folder: Path) -> Path:
    dev, test = load_dataset("sst2", "dev"), load_dataset("sst2", "test")
    rows = [{"id": f"dev:{i}", "text": t} for i, t in zip(dev.ids, dev.texts, strict=True)]
    rows += [{"id": f"test:{i}", "text": t} for i, t in zip(test.ids, test.texts, strict=True)]
    path = folder / f"sst2_{n}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
    return path


def load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())


def plain(model, tok, texts, method: str) -> dict:
    before = load()
    t0, c0 = time.perf_counter(), time.process_time()
    exps = gaflow.explain(model, tok, texts, method=method, batch_size=16)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(exps) == len(texts)
    return {"config": "plain", "method": method, "n": len(texts), "wall": wall,
            "rate": len(texts) / wall, "cpu_per_example": cpu / len(texts),
            "load_before": before, "load_after": load()}


def on_ray(path: Path, n: int, workers: int, method: str, folder: Path,
           limit: int | None = None) -> dict:
    out = Path(tempfile.mkdtemp(dir=folder))
    before = load()
    t0 = time.perf_counter()
    s = gaflow.explain_dataset(str(path), out, model="minilm-sst2", method=method,
                               workers=workers, batch_size=16, id_column="id", limit=limit)
    wall = time.perf_counter() - t0
    n = limit or n
    assert s.written == n and s.failed == 0, s.line()
    return {"config": f"ray {workers}" + (f" ({n} rows: fixed cost)" if limit else ""),
            "method": method, "n": n, "wall": wall, "rate": n / wall,
            "startup": s.startup_seconds, "first_rows": s.first_rows_seconds,
            "load_before": before, "load_after": load()}


def _cpu_job(texts, method):
    import time

    import gaflow

    model, tok = gaflow.load_model("minilm-sst2")
    gaflow.explain(model, tok, texts[:16], method=method)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    gaflow.explain(model, tok, texts, method=method, batch_size=16)
    return time.perf_counter() - t0, time.process_time() - c0


def cpu_ab(texts, method: str) -> dict:
    """Per-example CPU time of the same explanations in this process and in one Ray actor
    (independent of how much of the shared CPU each gets)."""
    import ray

    here = _cpu_job(texts, method)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        there = ray.get(ray.remote(num_cpus=1)(_cpu_job).remote(texts, method))
    finally:
        ray.shutdown()
    return {"config": "cpu A/B", "method": method, "n": len(texts),
            "plain_wall": here[0], "plain_cpu": here[1], "actor_wall": there[0],
            "actor_cpu": there[1], "load_after": load()}


FULL_TEST = {"sst2": 1821, "ag_news": 2000, "amazon_polarity": 500, "yelp_polarity": 500,
             "imdb": 1000, "eraser_movies": 199}  # held-out sizes (gaflow.data, test split)


def projection(results: Path, batch: int = 8) -> tuple[list[dict], float, float]:
    """Explanation CPU-seconds of the full benchmark from the committed runs
    (``results/<dataset>/results.json``: seconds per example of each method, this machine):
    per dataset, the run with the most methods. Also the longest single chunk (``batch``
    examples of the slowest method), below which no number of workers can go."""
    best: dict[str, dict] = {}
    for f in sorted(results.glob("*/results.json")):
        d = json.loads(f.read_text())
        name = d["config"]["dataset"]
        if name in FULL_TEST and len(d["methods"]) > len(best.get(name, {}).get("methods", {})):
            best[name] = d
    rows, total, tail = [], 0.0, 0.0
    for name, d in best.items():
        per = {m: e["seconds_per_example"] for m, e in d["methods"].items()}
        cpu = FULL_TEST[name] * sum(per.values())
        slow = max(per, key=per.get)
        tail = max(tail, batch * per[slow])
        total += cpu
        rows.append({"dataset": name, "n": FULL_TEST[name], "methods": len(per),
                     "seconds_per_example": sum(per.values()), "cpu_hours": cpu / 3600,
                     "slowest": f"{slow} {per[slow]:.1f} s"})
    return rows, total, tail


def write_report(report: dict, path: Path) -> None:
    runs = report["runs"]
    lines = ["# explain-dataset on Ray: throughput, start-up, cluster projection", "",
             f"Machine: {report['machine']}; OMP_NUM_THREADS={report['omp_num_threads']}; "
             "shared with other jobs (load average = 1-, 5-, 15-minute, before → after). "
             f"Model `minilm-sst2` (load {report['model_load_seconds']:.1f} s in the plain "
             "process); batches of 16. `python benchmarks/scale.py` (raw: `scale.json`).", "",
             "| config | method | n | wall s | examples/s | Ray start s | first rows s | "
             "load before → after |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if r["config"] == "cpu A/B":
            continue
        lines.append(
            f"| {r['config']} | {r['method']} | {r['n']} | {r['wall']:.1f} | {r['rate']:.2f} | "
            f"{r.get('startup', 0):.1f} | {r.get('first_rows') or 0:.1f} | "
            f"{' '.join(map(str, r['load_before'][:2]))} → "
            f"{' '.join(map(str, r['load_after'][:2]))} |")
    lines += ["", "CPU time of the same 96 explanations (after a warm-up) in the plain process "
              "and in one Ray actor:", "", "| method | plain wall s | plain CPU s | actor wall s "
              "| actor CPU s |", "|---|---|---|---|---|"]
    for r in runs:
        if r["config"] == "cpu A/B":
            lines.append(f"| {r['method']} | {r['plain_wall']:.2f} | {r['plain_cpu']:.2f} | "
                         f"{r['actor_wall']:.2f} | {r['actor_cpu']:.2f} |")
    rows, total, tail = report["projection"]
    lines += ["", "Projection input (full held-out sets; explanation seconds per example summed "
              "over the methods of the committed run, measured on this machine):", "",
              "| dataset | n | methods | s/example (all methods) | CPU hours | slowest |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['n']} | {r['methods']} | "
                     f"{r['seconds_per_example']:.1f} | {r['cpu_hours']:.1f} | {r['slowest']} |")
    lines.append(f"| total | | | | {total / 3600:.1f} | longest chunk (8 examples) "
                 f"{tail / 60:.0f} min |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--method", default="agf_rp")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--agf-n", type=int, default=200, help="also agf on this many (0: skip)")
    ap.add_argument("--report", action="store_true", help="only rewrite the tables")
    args = ap.parse_args()
    if args.report:
        report = json.loads((RESULTS / "scale.json").read_text())
        report["projection"] = projection(Path(__file__).parents[1] / "results")
        write_report(report, RESULTS / "scale_measured.md")
        return
    workers = [int(w) for w in args.workers.split(",")]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = corpus(args.n, folder)
        texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        t0 = time.perf_counter()
        model, tok = gaflow.load_model("minilm-sst2")
        model_load = time.perf_counter() - t0
        plans = [(args.method, args.n, path, texts)]
        if args.agf_n:
            (folder / "agf").mkdir()
            small = corpus(args.agf_n, folder / "agf")
            plans.append(("agf", args.agf_n, small, texts[: args.agf_n]))
        for method, n, p, tx in plans:
            runs.append(cpu_ab(tx[:96], method))
            print(json.dumps(runs[-1]), flush=True)
            for w in workers:
                runs.append(on_ray(p, n, w, method, folder, limit=16))
                print(json.dumps(runs[-1]), flush=True)
            for rep in range(args.repeat if method == args.method else 1):
                for w in [0, *workers]:
                    r = plain(model, tok, tx, method) if w == 0 else on_ray(p, n, w, method,
                                                                             folder)
                    r["repeat"] = rep
                    runs.append(r)
                    print(json.dumps(r), flush=True)
    report = {"machine": machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "model_load_seconds": model_load, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    report["projection"] = projection(Path(__file__).parents[1] / "results")
    (RESULTS / "scale.json").write_text(json.dumps(report, indent=2))
    write_report(report, RESULTS / "scale_measured.md")
    print(f"wrote {RESULTS / 'scale.json'} and scale_measured.md (scale.md adds the reading)")


if __name__ == "__main__":
    main()
