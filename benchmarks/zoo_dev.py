"""Choose a zoo recipe's starting adapter on a dev part carved from its *train* part only.

Usage: ``GAFLOW_DATA=../shared/data python benchmarks/zoo_dev.py minilm-amazon
--starts minilm-sst2,minilm-yelp,minilm-imdb,minilm-movies --finetune 2 --dev 100``

The dev part is the ``--dev`` train ids of smallest sha256("gaflow-split-v1:<dataset>-dev:<id>")
(the same rule that cut train from test, with another name); the test part is never read. Every
start is first scored on dev as it is (no training); the ``--finetune`` best are then trained with
the recipe's hyper-parameters on the rest of the train part and scored on dev again. Writes
``benchmarks/results/zoo_dev_<model>.json`` after every figure (a stopped run keeps what it
measured); ``chosen`` is the start with the best dev accuracy after fine-tuning (as is, while
none is fine-tuned), the first listed on a tie.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from gaflow.data import load_dataset
from gaflow.data.loaders import SPLIT_SALT
from gaflow.models.train import TrainConfig, config_dict, predict, set_seed, train
from gaflow.models.zoo import RECIPES, artifact_dir, load_base, load_zoo_model, read_meta

OUT = Path(__file__).resolve().parent / "results"


def dev_ids(dataset: str, ids: list[str], n: int) -> set[str]:
    """The ``n`` ids of smallest sha256 under the name ``<dataset>-dev``."""
    key = lambda i: hashlib.sha256(f"{SPLIT_SALT}:{dataset}-dev:{i}".encode()).hexdigest()  # noqa: E731
    return set(sorted(ids, key=key)[:n])


def accuracy(model, tok, ds, max_length: int) -> float:
    probs = predict(model, tok, ds.texts, max_length)
    return float((probs.argmax(1) == np.asarray(ds.labels)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a zoo recipe name, e.g. minilm-amazon")
    parser.add_argument("--starts", required=True, help="comma list of zoo adapters")
    parser.add_argument("--finetune", type=int, default=2, help="fine-tune the N best starts")
    parser.add_argument("--dev", type=int, default=100, help="dev examples out of train")
    args = parser.parse_args()
    recipe = RECIPES[args.model]
    full = load_dataset(recipe.dataset, recipe.train_split)
    dev = dev_ids(recipe.dataset, full.ids, args.dev)
    dev_ds = full.subset([k for k, i in enumerate(full.ids) if i in dev])
    fit_ds = full.subset([k for k, i in enumerate(full.ids) if i not in dev])
    print(f"{recipe.dataset}/{recipe.train_split}: {len(fit_ds)} to fit, {len(dev_ds)} dev",
          flush=True)
    report = {"model": args.model, "dataset": recipe.dataset, "split": recipe.train_split,
              "fit_n": len(fit_ds), "dev_n": len(dev_ds), "dev_rule":
              f"{args.dev} ids of smallest sha256('{SPLIT_SALT}:{recipe.dataset}-dev:<id>')",
              "max_length": recipe.max_length, "as_is": {}, "finetuned": {}}
    for start in args.starts.split(","):
        model, tok = load_zoo_model(start)
        report["as_is"][start] = accuracy(model, tok, dev_ds, recipe.max_length)
        print(f"{start} as is: dev accuracy {report['as_is'][start]:.3f}", flush=True)
        write(report)
    best = sorted(report["as_is"], key=report["as_is"].get, reverse=True)[: args.finetune]
    for start in best:
        from peft import PeftModel

        cfg = TrainConfig(**{**config_dict(recipe.train), "init_from": start})
        if read_meta(artifact_dir(start))["label_names"] != full.label_names:
            raise SystemExit(f"{start} has other labels than {recipe.dataset}")
        set_seed(cfg.seed)
        base, tok = load_base(full.label_names)
        model = PeftModel.from_pretrained(base, artifact_dir(start), is_trainable=True)
        t0 = time.perf_counter()
        train(model, tok, fit_ds.texts, fit_ds.labels, cfg, log=lambda *_: None)
        acc = accuracy(model, tok, dev_ds, recipe.max_length)
        report["finetuned"][start] = {"dev_accuracy": acc, "train_config": config_dict(cfg),
                                      "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{start} fine-tuned on {len(fit_ds)}: dev accuracy {acc:.3f} "
              f"({report['finetuned'][start]['seconds']} s)", flush=True)
        write(report)
    print(f"chosen start: {report['chosen']}; wrote {write(report)}")


def write(report: dict) -> Path:
    """Save ``report`` with its current choice (see the module docstring)."""
    if report["finetuned"]:
        report["chosen"] = max(report["finetuned"],
                               key=lambda s: report["finetuned"][s]["dev_accuracy"])
    else:
        report["chosen"] = max(report["as_is"], key=report["as_is"].get)
    OUT.mkdir(exist_ok=True)
    out = OUT / f"zoo_dev_{report['model']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
