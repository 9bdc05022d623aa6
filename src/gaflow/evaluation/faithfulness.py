"""Faithfulness and plausibility metrics as pure functions over precomputed probabilities/scores.

Each metric returns one value per example; :data:`METRICS` says which direction is better.

* AOPC (DeYoung-style area over the perturbation curve, AttCAT/GAF protocol):
  mean over k of p(ŷ|x) − p(ŷ|x̃_k), x̃_k = x without its top-k% tokens. Higher is better.
* LOdds: mean over k of log(p(ŷ|x̃_k) / p(ŷ|x)). Lower (more negative) is better.
* Comprehensiveness (ERASER): mean over bins of p(ŷ|x) − p(ŷ|x \\ r_k). Higher is better.
* Sufficiency (ERASER): mean over bins of p(ŷ|x) − p(ŷ|r_k) (only the top-k% kept). Lower is better.
* Accuracy after masking: is the label still predicted when the top-k% are removed (lower is
  better for the explanation).
* Plausibility against human rationales: token F1 of the top-|r| tokens and AUPRC (average
  precision of the scores as a ranking of rationale tokens). Higher is better.
* Entropy (descriptive, not a faithfulness score): normalised entropy of the positive token
  shares, 1 = uniform. Says whether an attribution is informative at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AOPC_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ERASER_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    description: str
    ranked: bool = True  # False: descriptive (no best method is marked)


METRICS = {
    "aopc_delete": MetricInfo("AOPC (delete)", True, "mean prob. drop, top-k% deleted"),
    "aopc_pad": MetricInfo("AOPC ([PAD])", True, "mean prob. drop, top-k% -> [PAD]"),
    "lodds_delete": MetricInfo("LOdds (delete)", False, "mean log prob. ratio, deleted"),
    "lodds_pad": MetricInfo("LOdds ([PAD])", False, "mean log prob. ratio, [PAD]"),
    "comprehensiveness": MetricInfo("Comp.", True, "ERASER, bins 1/5/10/20/50%, deleted"),
    "sufficiency": MetricInfo("Suff.", False, "ERASER, only top bins kept"),
    "accuracy_masked": MetricInfo("Acc. after 20% del.", False, "label kept after deletion"),
    "token_f1": MetricInfo("Token F1", True, "top-|rationale| tokens vs human rationale"),
    "auprc": MetricInfo("AUPRC", True, "scores ranking human rationale tokens"),
    "entropy": MetricInfo("Entropy", False, "normalised entropy of the positive token shares "
                          "(non-special tokens; 1 = uniform)", ranked=False),
}


def share_entropy(scores: np.ndarray, special: np.ndarray) -> float:
    """How spread an attribution is: the entropy of the positive shares ``max(phi_j, 0) / sum``
    over the non-special tokens, divided by ``log n`` (1 = uniform, 0 = one token). NaN when
    fewer than two tokens or no positive score."""
    s = np.maximum(np.asarray(scores, float)[~np.asarray(special, bool)], 0.0)
    if s.size < 2 or s.sum() <= 0:
        return float("nan")
    q = s[s > 0] / s.sum()
    return float(-(q * np.log(q)).sum() / np.log(s.size))


def mean_drop(p_orig: np.ndarray, p_pert: np.ndarray) -> np.ndarray:
    """Per example: mean over columns of p_orig − p_pert. Shapes (n,), (n, K) -> (n,).
    AOPC, comprehensiveness and sufficiency are all this, on different perturbations."""
    p_orig = np.asarray(p_orig, float)
    return (p_orig[:, None] - np.asarray(p_pert, float)).mean(axis=1)


def log_odds(p_orig: np.ndarray, p_pert: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per example: mean over columns of log(p_pert / p_orig) (probabilities floored at eps)."""
    p_orig = np.maximum(np.asarray(p_orig, float), eps)
    return np.log(np.maximum(np.asarray(p_pert, float), eps) / p_orig[:, None]).mean(axis=1)


def token_labels(offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
                 special: np.ndarray) -> np.ndarray:
    """1 for each non-special token whose character span overlaps a rationale span."""
    lab = np.zeros(len(offsets), dtype=bool)
    for k, (a, b) in enumerate(offsets):
        if special[k] or b <= a:
            continue
        lab[k] = any(a < e and s < b for s, e in spans)
    return lab


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (ties: stable by position)."""
    labels = np.asarray(labels, bool)
    if not labels.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / hits.sum())


def top_k_f1(labels: np.ndarray, scores: np.ndarray, candidates: np.ndarray) -> float:
    """F1 of the top-|rationale| candidate tokens against the rationale tokens."""
    labels = np.asarray(labels, bool)
    k = int(labels.sum())
    if k == 0:
        return float("nan")
    cand = np.flatnonzero(candidates)
    top = cand[np.argsort(-np.asarray(scores, float)[cand], kind="stable")[:k]]
    tp = labels[top].sum()
    precision, recall = tp / max(1, len(top)), tp / k
    return float(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
