"""Perturbed inputs for the faithfulness metrics, and their batched evaluation.

A perturbation takes the ``k`` highest-scoring **non-special** tokens of an example (ties go to the
earlier position) and either removes them (``delete``), or replaces them by ``[PAD]`` (``pad``,
attention mask kept at 1, the AttCAT/GAF protocol) or ``[MASK]`` (``mask``, DecompX). Special
tokens ([CLS], [SEP]) are never touched. ``keep=True`` perturbs the complement instead (ERASER
sufficiency: only the top-k tokens survive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InputError

MODES = ("delete", "pad", "mask")


def top_positions(scores: np.ndarray, special: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores among non-special tokens (stable: earlier first)."""
    candidates = np.flatnonzero(~np.asarray(special, dtype=bool))
    order = candidates[np.argsort(-np.asarray(scores, float)[candidates], kind="stable")]
    return order[: max(0, int(k))]


def counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Number of tokens for each fraction of ``n`` non-special tokens: round(f * n)."""
    return [int(round(f * n)) for f in fractions]


def perturb(ids: Sequence[int], chosen: np.ndarray, mode: str, tokenizer,
            special: np.ndarray | None = None, keep: bool = False) -> list[int]:
    """``ids`` with the ``chosen`` positions removed / replaced (or, with ``keep``, everything
    else that is not special)."""
    if mode not in MODES:
        raise InputError(f"perturbation mode must be one of {MODES}, got {mode!r}")
    n = len(ids)
    hit = np.zeros(n, dtype=bool)
    hit[np.asarray(chosen, dtype=int)] = True
    if keep:
        sp = np.zeros(n, dtype=bool) if special is None else np.asarray(special, dtype=bool)
        hit = ~hit & ~sp
    if mode == "delete":
        return [t for t, h in zip(ids, hit, strict=True) if not h]
    token = tokenizer.pad_token_id if mode == "pad" else tokenizer.mask_token_id
    if token is None:
        raise InputError(f"the tokenizer has no {'[PAD]' if mode == 'pad' else '[MASK]'} token")
    return [token if h else t for t, h in zip(ids, hit, strict=True)]


@torch.no_grad()
def class_probabilities(model, sequences: list[list[int]], pad_id: int,
                        batch_size: int = 64) -> np.ndarray:
    """(n, C) class probabilities of each sequence, batched (sorted by length, padded per
    batch; the padding is masked out, tokens replaced by [PAD] inside a sequence are not)."""
    device = next(model.parameters()).device
    out = np.zeros((len(sequences), model.config.num_labels))
    order = np.argsort([len(s) for s in sequences], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        n = max(1, max(len(sequences[i]) for i in idx))
        x = torch.full((len(idx), n), pad_id, dtype=torch.long, device=device)
        m = torch.zeros((len(idx), n), dtype=torch.long, device=device)
        for k, i in enumerate(idx):
            seq = sequences[i]
            x[k, : len(seq)] = torch.tensor(seq, dtype=torch.long, device=device)
            m[k, : len(seq)] = 1
        probs = torch.softmax(model(input_ids=x, attention_mask=m).logits.double(), -1)
        out[idx] = probs.cpu().numpy()
    return out
