"""The faithfulness benchmark runner behind ``gaflow bench``.

For each sampled example and method: explain the predicted class, perturb the input by the
method's ranking (top-k% deleted / [PAD]-replaced, ERASER bins removed / kept), evaluate every
perturbed input in batches, and store one JSON line per example in ``<out>/cache/<method>.jsonl``
(an interrupted run resumes from there). Then aggregate with bootstrap CIs into
``results.md``, ``results.csv``, ``results.json`` and AOPC / LOdds curve plots.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..flow.constructions import DEFAULT_METHOD
from ..info import versions
from .faithfulness import (
    AOPC_FRACTIONS,
    ERASER_BINS,
    METRICS,
    average_precision,
    log_odds,
    mean_drop,
    share_entropy,
    token_labels,
    top_k_f1,
)
from .perturb import MODES, class_probabilities, counts, perturb, top_positions
from .stats import bootstrap_ci

CACHE_VERSION = 1


@dataclass
class BenchConfig:
    """Every knob of a benchmark run (written to results.json and checked on resume)."""

    model: str
    dataset: str
    methods: list[str]
    n: int
    split: str | None = None
    seed: int = 0
    modes: list[str] = field(default_factory=lambda: ["delete", "pad"])
    fractions: list[float] = field(default_factory=lambda: list(AOPC_FRACTIONS))
    bins: list[float] = field(default_factory=lambda: list(ERASER_BINS))
    max_length: int | None = None
    batch_size: int = 8
    n_boot: int = 1000


def sample_indices(n_total: int, n: int, seed: int) -> list[int]:
    """A seeded sample of ``n`` example indices (all of them, in order, when n >= n_total)."""
    if n >= n_total:
        return list(range(n_total))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n_total, size=n, replace=False).tolist())


def evaluate_explanation(model, tokenizer, exp, label: int, cfg: BenchConfig,
                         rationale: list[tuple[int, int]] | None = None) -> dict:
    """All metrics of one explanation (one example, one method)."""
    ids = tokenizer.convert_tokens_to_ids(exp.tokens)
    special = np.asarray(exp.special, bool)
    scores = np.asarray(exp.scores, float)
    n_free = int((~special).sum())
    seqs, tags = [list(ids)], [("orig", 0)]
    for mode in cfg.modes:
        for k, c in enumerate(counts(n_free, cfg.fractions)):
            seqs.append(perturb(ids, top_positions(scores, special, c), mode, tokenizer))
            tags.append((mode, k))
    for k, c in enumerate(counts(n_free, cfg.bins)):
        top = top_positions(scores, special, max(1, c))
        seqs.append(perturb(ids, top, "delete", tokenizer))
        tags.append(("comp", k))
        seqs.append(perturb(ids, top, "delete", tokenizer, special=special, keep=True))
        tags.append(("suff", k))
    # accuracy after deleting the top 20%, evaluated in the same batches
    c20 = counts(n_free, [0.2])[0]
    seqs.append(perturb(ids, top_positions(scores, special, c20), "delete", tokenizer))
    tags.append(("acc20", 0))
    probs = class_probabilities(model, seqs, tokenizer, cfg.batch_size * 8)
    p = probs[:, exp.target]
    rec: dict = {"target": int(exp.target), "label": int(label), "n_tokens": len(ids),
                 "p_orig": float(p[0]), "curves": {},
                 "entropy": share_entropy(scores, special)}
    for mode in ("comp", "suff", *cfg.modes):
        rec["curves"][mode] = [float(p[i]) for i, (m, _) in enumerate(tags) if m == mode]
    rec["correct_after_20"] = bool(int(np.argmax(probs[-1])) == label)
    rec["correct"] = bool(int(np.argmax(probs[0])) == label)
    if rationale is not None:
        lab = token_labels(exp.offsets, rationale, special)
        rec["token_f1"] = top_k_f1(lab, scores, ~special)
        rec["auprc"] = average_precision(lab[~special], scores[~special])
    return rec


def metric_values(records: list[dict], modes: list[str]) -> dict[str, np.ndarray]:
    """Per-example metric arrays from cached records."""
    p0 = np.array([r["p_orig"] for r in records])
    out = {}
    for mode in modes:
        curve = np.array([r["curves"][mode] for r in records])
        out[f"aopc_{mode}"] = mean_drop(p0, curve)
        out[f"lodds_{mode}"] = log_odds(p0, curve)
    out["comprehensiveness"] = mean_drop(p0, np.array([r["curves"]["comp"] for r in records]))
    out["sufficiency"] = mean_drop(p0, np.array([r["curves"]["suff"] for r in records]))
    out["accuracy_masked"] = np.array([float(r["correct_after_20"]) for r in records])
    if records and "auprc" in records[0]:
        out["token_f1"] = np.array([r["token_f1"] for r in records], dtype=float)
        out["auprc"] = np.array([r["auprc"] for r in records], dtype=float)
    if records and all("entropy" in r for r in records):
        out["entropy"] = np.array([r["entropy"] for r in records], dtype=float)
    return out


def run_benchmark(cfg: BenchConfig, out_dir: str | Path, data_path=None, progress: bool = True,
                  fresh: bool = False, cached_only: bool = False, workers: int | None = None,
                  address: str | None = None) -> dict:
    """Run (or resume) a benchmark and write its results; returns the summary dict.

    ``cached_only=True`` computes nothing: it summarises the cached examples of the sample (each
    method's ``n`` in the table says how many that is; methods with none are left out).
    ``workers=N`` computes the same batches on N Ray actors (:mod:`gaflow.scale.bench`; local
    Ray, or the cluster at ``address`` / ``$RAY_ADDRESS``): the same records, hence the same
    table. ``None`` (default): this process.
    """
    if cached_only and fresh:
        raise InputError("cached_only and fresh exclude each other")
    if address is not None and workers is None:
        raise InputError("address joins a Ray cluster for workers=N; give workers too")
    if workers is not None:  # before any work: Ray installed, a sane worker count
        from ..scale.runtime import check_workers, require_ray

        require_ray()
        check_workers(workers)
    from .. import load_model
    from ..data import default_split, load_dataset
    from ..methods import method_names
    from ..models.zoo import inference_length

    unknown = [m for m in cfg.methods if m not in method_names()]
    if unknown:
        raise InputError(f"unknown methods {unknown}; known: {', '.join(method_names())}")
    bad = [m for m in cfg.modes if m not in MODES]
    if bad:
        raise InputError(f"unknown perturbation modes {bad}; known: {MODES}")
    out = Path(out_dir)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    # a copy: the caller's configuration stays as it was
    cfg = replace(cfg, methods=list(dict.fromkeys(cfg.methods)),
                  split=cfg.split or default_split(cfg.dataset),
                  max_length=inference_length(cfg.model) if cfg.max_length is None
                  else cfg.max_length)
    split = cfg.split
    if cfg.n < 1 or cfg.batch_size < 1:
        raise InputError(f"n and batch_size must be positive, got {cfg.n} and {cfg.batch_size}")
    stamp = cache / "config.json"
    if not stamp.exists() and any(p.name != "cache" for p in out.iterdir()):
        raise InputError(f"{out} is not empty and holds no benchmark; choose an empty --out")
    key = {k: v for k, v in asdict(cfg).items() if k not in ("methods", "n", "n_boot")}
    if stamp.exists() and not fresh:
        old = json.loads(stamp.read_text())
        if old != {**key, "cache_version": CACHE_VERSION}:
            raise InputError(
                f"{out} holds results of another configuration ({stamp}); use another --out "
                "or pass --fresh to discard them"
            )
    if fresh:
        for f in cache.glob("*.jsonl"):
            f.unlink()
    ds = load_dataset(cfg.dataset, split, data_path)
    idx = sample_indices(len(ds), cfg.n, cfg.seed)
    ds = ds.subset(idx)
    model, tokenizer = load_model(cfg.model)
    # written once the data and model load, so a failed first try does not lock the folder
    stamp.write_text(json.dumps({**key, "cache_version": CACHE_VERSION}, indent=2))

    records: dict[str, list[dict]] = {}
    todo = []
    for method in cfg.methods:
        f = cache / f"{method}.jsonl"
        done = _read_cache(f)
        keep = {r["id"] for r in done}
        records[method] = [r for r in done if r["id"] in set(ds.ids)]
        todo += [(method, k) for k, i in enumerate(ds.ids) if i not in keep]
    if cached_only:  # nothing to compute; a method with no cached example is left out
        todo = []
        records = {m: r for m, r in records.items() if r}

    t_start = time.perf_counter()
    chunks = [(method, pending[s : s + cfg.batch_size])
              for method in cfg.methods for pending in [[k for m, k in todo if m == method]]
              for s in range(0, len(pending), cfg.batch_size)]
    if workers is not None:  # the same chunks on Ray actors (gaflow.scale.bench)
        from ..scale.bench import bench_on_ray

        done = bench_on_ray(cfg, ds, chunks, workers, address)
    else:
        done = ((m, c, bench_chunk(model, tokenizer, ds, cfg, m, c)) for m, c in chunks)
    with _progress(progress and bool(todo)) as bar:
        task = bar.add_task("bench", total=len(todo))
        for method, chunk, recs in done:
            with (cache / f"{method}.jsonl").open("a") as fh:
                for rec in recs:
                    fh.write(json.dumps(rec) + "\n")
            records[method].extend(recs)
            bar.update(task, description=f"{method:>22}")
            bar.advance(task, len(chunk))
    wall = time.perf_counter() - t_start
    order = {i: k for k, i in enumerate(ds.ids)}
    for method in records:
        records[method].sort(key=lambda r: order[r["id"]])
    return write_results(cfg, records, out, wall, ds)


def bench_chunk(model, tokenizer, ds, cfg: BenchConfig, method: str,
                chunk: list[int]) -> list[dict]:
    """Explain the examples ``chunk`` (indices into ``ds``) with ``method`` in one batch and
    evaluate each: one cache record per example (also what a Ray worker runs)."""
    from .. import explain

    t0 = time.perf_counter()
    exps = explain(model, tokenizer, [ds.texts[k] for k in chunk], method=method,
                   truncation=True, max_length=cfg.max_length, batch_size=cfg.batch_size)
    per = (time.perf_counter() - t0) / len(chunk)
    out = []
    for k, exp in zip(chunk, exps, strict=True):
        rat = ds.rationales[k] if ds.rationales is not None else None
        rec = evaluate_explanation(model, tokenizer, exp, ds.labels[k], cfg, rat)
        rec.update(id=ds.ids[k], method=method, seconds=per)
        out.append(rec)
    return out


def _read_cache(f: Path) -> list[dict]:
    """Cached records; a last line cut short by an interrupted run is dropped (and rewritten)."""
    if not f.exists():
        return []
    lines = f.read_text().splitlines()
    out = []
    for k, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if k != len(lines) - 1:
                raise InputError(f"{f} line {k + 1} is corrupt; pass --fresh") from None
            f.write_text("".join(json.dumps(r) + "\n" for r in out))
    return out


def _progress(enabled: bool):
    """A rich progress bar with ETA; shows nothing when not ``enabled``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    disable=not enabled)


def write_results(cfg: BenchConfig, records: dict[str, list[dict]], out: Path, wall: float,
                  ds) -> dict:
    """Aggregate cached records into results.{md,csv,json} and curve plots."""
    from ..viz.plots import Curve, curve_plot

    summary: dict = {"config": asdict(cfg),
                     "versions": {**versions(), "platform": platform.platform()},
                     "wall_seconds": wall,
                     "n_examples": len(ds), "dataset_source": ds.source, "methods": {}}
    for method, recs in records.items():
        if not recs:
            continue
        vals = metric_values(recs, cfg.modes)
        entry = {"n": len(recs), "seconds_per_example": float(np.mean([r["seconds"]
                                                                       for r in recs]))}
        for name, v in vals.items():
            mean, lo, hi = bootstrap_ci(v, cfg.n_boot, seed=cfg.seed)
            entry[name] = {"mean": mean, "low": lo, "high": hi}
        entry["accuracy"] = float(np.mean([r["correct"] for r in recs]))
        summary["methods"][method] = entry
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    names = [m for m in METRICS if any(m in e for e in summary["methods"].values())]
    with (out / "results.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "n", "seconds_per_example"]
                   + [f"{m}_{s}" for m in names for s in ("mean", "low", "high")])
        for method, e in summary["methods"].items():
            w.writerow([method, e["n"], f"{e['seconds_per_example']:.4f}"]
                       + [f"{e[m][s]:.6f}" if m in e else "" for m in names
                          for s in ("mean", "low", "high")])
    (out / "results.md").write_text(markdown_table(summary, names) + "\n")
    for mode in cfg.modes:
        curves_p, curves_l = {}, {}
        for method, recs in records.items():
            if not recs:
                continue
            p0 = np.array([r["p_orig"] for r in recs])
            pk = np.array([r["curves"][mode] for r in recs])
            drop = p0[:, None] - pk
            lod = np.log(np.maximum(pk, 1e-12) / np.maximum(p0, 1e-12)[:, None])
            x = [100 * f for f in cfg.fractions]
            for arr, dest in ((drop, curves_p), (lod, curves_l)):
                cis = [bootstrap_ci(arr[:, k], 300, seed=cfg.seed) for k in range(arr.shape[1])]
                dest[method] = Curve(x, [c[0] for c in cis], [c[1] for c in cis],
                                     [c[2] for c in cis])
        what = "deleted" if mode == "delete" else f"replaced by [{mode.upper()}]"
        title = f"{cfg.dataset}/{cfg.split}, {cfg.model}: top-k% tokens {what}"
        curve_plot(curves_p, out / f"aopc_{mode}.png", title=title, xlabel="% of tokens",
                   ylabel="p(ŷ|x) − p(ŷ|x̃)  (higher = more faithful)", highlight=DEFAULT_METHOD,
                   overwrite=True)
        curve_plot(curves_l, out / f"lodds_{mode}.png", title=title, xlabel="% of tokens",
                   ylabel="log p(ŷ|x̃)/p(ŷ|x)  (lower = more faithful)", highlight=DEFAULT_METHOD,
                   overwrite=True)
    return summary


def _arrow(info) -> str:
    if not info.ranked:
        return ""
    return "↑ " if info.higher_is_better else "↓ "


def markdown_table(summary: dict, names: list[str]) -> str:
    cfg = summary["config"]
    head = ["method", "n", *(_arrow(METRICS[m]) + METRICS[m].name for m in names), "s/example"]
    lines = [
        f"**{cfg['dataset']}/{cfg['split']}**, model `{cfg['model']}`, n = "
        f"{summary['n_examples']}, seed {cfg['seed']}, max {cfg['max_length']} tokens; "
        "mean [95% bootstrap CI]; ↑ higher is better, ↓ lower is better; best mean in bold"
        + ("; entropy (1 = uniform) describes how spread the attribution is and is not ranked."
           if any(not METRICS[m].ranked for m in names) else "."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    best = {}
    for m in names:
        if not METRICS[m].ranked:
            best[m] = None
            continue
        vals = {k: e[m]["mean"] for k, e in summary["methods"].items() if m in e}
        pick = max if METRICS[m].higher_is_better else min
        best[m] = pick(vals, key=vals.get) if vals else None
    for method, e in summary["methods"].items():
        cells = [method, str(e["n"])]
        for m in names:
            if m not in e:  # cached before the metric existed
                cells.append("—")
                continue
            v = e[m]
            text = f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
            cells.append(f"**{text}**" if best[m] == method else text)
        cells.append(f"{e['seconds_per_example']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
