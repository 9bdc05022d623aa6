"""Parameter-efficient fine-tuning (LoRA via ``peft`` + pooler and classifier head).

A trained model is a small folder in peft's own format (``adapter_config.json``,
``adapter_model.safetensors``) plus ``gaflow_model.json`` (labels, base model, training record). It
is loaded on top of the pretrained base weights by :func:`gaflow.models.load_zoo_model`.
Reproducible: one seed fixes the initialisation, the dropout and the order of the batches.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..batching import pad_batch
from ..errors import InputError

# LoRA on the attention projections and the feed-forward input of every encoder layer (BERT names).
LORA_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense)"
)


@dataclass
class TrainConfig:
    """Everything that decides a training run (recorded next to the weights)."""

    dataset: str
    epochs: float = 1.0
    lr: float = 5e-4
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_examples: int | None = None
    init_from: str | None = None
    head: str = "head_tail"
    extra: dict = field(default_factory=dict)


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def encode(
    tokenizer, texts: list[str], max_length: int, head: str = "head_tail"
) -> list[list[int]]:
    """Token ids with special tokens, at most ``max_length``. Longer texts keep their first
    quarter and last three quarters of the budget (``head_tail``, Sun et al. 2019) or only their
    beginning (``head``)."""
    if head not in ("head", "head_tail"):
        raise InputError(f"head must be 'head' or 'head_tail', got {head!r}")
    out = []
    budget = max_length - 2
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        if len(ids) > budget:
            if head == "head":
                ids = ids[:budget]
            else:
                first = budget // 4
                ids = ids[:first] + ids[len(ids) - (budget - first) :]
        out.append([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id])
    return out


def _collate(batch: list[list[int]], tokenizer) -> dict[str, torch.Tensor]:
    ids, mask = pad_batch(tokenizer, batch)
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def predict(model, tokenizer, texts, max_length: int, batch_size: int = 64,
            head: str = "head_tail") -> np.ndarray:
    """Class probabilities ``(n, C)`` for ``texts``, in batches sorted by length."""
    model.eval()
    enc = encode(tokenizer, list(texts), max_length, head)
    order = np.argsort([len(x) for x in enc], kind="stable")
    probs = np.zeros((len(enc), model.config.num_labels))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        batch = _collate([enc[i] for i in idx], tokenizer)
        device = next(model.parameters()).device
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
        probs[idx] = torch.softmax(logits, -1).cpu().numpy()
    return probs


def build_peft_model(base, cfg: TrainConfig):
    """Wrap ``base`` (a BertForSequenceClassification) with LoRA; the pooler and classifier
    are fully trained and saved (peft ``modules_to_save``)."""
    from peft import LoraConfig, get_peft_model

    set_seed(cfg.seed)  # LoRA's A matrices are drawn at random
    lcfg = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=["classifier", "pooler"],
        task_type="SEQ_CLS",
    )
    return get_peft_model(base, lcfg)


def train(model, tokenizer, texts, labels, cfg: TrainConfig, log=print) -> dict:
    """Fine-tune ``model`` (already wrapped by :func:`build_peft_model`) in place.

    AdamW, linear warm-up then linear decay; batches are drawn at random (seeded), padded to
    their longest member. Returns a record with the loss curve and the wall time.
    """
    set_seed(cfg.seed)
    enc = encode(tokenizer, list(texts), cfg.max_length, cfg.head)
    y = torch.tensor(labels, dtype=torch.long)
    n = len(enc)
    steps = max(1, math.ceil(cfg.epochs * n / cfg.batch_size))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(math.ceil(cfg.epochs) + 1)])
    model.train()
    losses, t0 = [], time.perf_counter()
    for step in range(steps):
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        batch = _collate([enc[i] for i in idx], tokenizer)
        device = next(model.parameters()).device
        out = model(**{k: v.to(device) for k, v in batch.items()}, labels=y[idx].to(device))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        if log and (step + 1) % 50 == 0:
            el = time.perf_counter() - t0
            log(f"step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f} "
                f"({el:.0f} s, eta {el / (step + 1) * (steps - step - 1):.0f} s)")
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - t0, "losses": losses}


def save_artifact(peft_model, out_dir: Path, meta: dict) -> None:
    """Write the adapter (peft format) and ``gaflow_model.json`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out_dir)
    for extra in ("README.md",):  # peft writes a model card we do not need
        (out_dir / extra).unlink(missing_ok=True)
    (out_dir / "gaflow_model.json").write_text(json.dumps(meta, indent=2) + "\n")


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
