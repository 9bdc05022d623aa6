"""Padding token-id lists into model batches (the tokenizer's own ``pad``), and class
probabilities of many sequences.

Shared by fine-tuning, the occlusion baseline, the faithfulness metrics and generation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int, device=None):
    """Right-pad ``rows`` to one length: ``(input_ids, attention_mask)``, both (B, n) long, with
    the mask 0 on the padding only."""
    n = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), n), dtype=torch.long, device=device)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(list(r), dtype=torch.long, device=device)
        mask[k, : len(r)] = 1
    return ids, mask


def pad_batch(tokenizer, rows: Sequence[Sequence[int]], device=None):
    """Pad ``rows`` of token ids by the tokenizer's own rule (``tokenizer.pad``, through
    transformers' ``DataCollatorWithPadding``): ``(input_ids, attention_mask)``, (B, n) long,
    the mask 0 on the padding only."""
    from transformers import DataCollatorWithPadding

    batch = DataCollatorWithPadding(tokenizer, return_tensors="pt")(
        [{"input_ids": list(r)} for r in rows])
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


@torch.no_grad()
def class_probabilities(model, sequences: list[list[int]], tokenizer,
                        batch_size: int = 64) -> np.ndarray:
    """(n, C) class probabilities of each sequence, batched (sorted by length, padded per
    batch; the padding is masked out, tokens replaced by [PAD] inside a sequence are not)."""
    device = next(model.parameters()).device
    out = np.zeros((len(sequences), model.config.num_labels))
    order = np.argsort([len(s) for s in sequences], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x, m = pad_batch(tokenizer, [sequences[i] for i in idx], device)
        probs = torch.softmax(model(input_ids=x, attention_mask=m).logits.double(), -1)
        out[idx] = probs.cpu().numpy()
    return out
