"""Bootstrap confidence intervals (seeded, so a rerun gives the same interval)."""

from __future__ import annotations

import numpy as np

from gaflow.errors import InputError


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """(mean, low, high) of the mean of ``values`` (NaNs dropped) by the percentile bootstrap."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_difference(a, b, higher_is_better: bool = True, n_boot: int = 1000,
                      level: float = 0.95, seed: int = 0):
    """Paired comparison of two methods scored on the same examples: ``(mean, low, high,
    share)`` of the per-example difference ``a - b`` (mean and percentile-bootstrap CI, pairs
    with a NaN dropped) and the share of examples on which ``a`` is strictly better."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise InputError(f"paired scores need equal shapes, got {a.shape} and {b.shape}")
    d = a - b
    d = d[np.isfinite(d)]
    mean, low, high = bootstrap_ci(d, n_boot=n_boot, level=level, seed=seed)
    share = float(np.mean(d > 0 if higher_is_better else d < 0)) if d.size else float("nan")
    return mean, low, high, share
