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

from ..batching import class_probabilities  # noqa: F401  (re-exported for the metrics)
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
