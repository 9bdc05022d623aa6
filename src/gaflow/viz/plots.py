"""Benchmark plots (one module for every results figure): curves with confidence bands.

Used by the faithfulness benchmark for AOPC / LOdds curves per method and by the benchmark scripts.
Every figure has a title, labelled axes and a legend; bands are the 95% bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Curve:
    """One line: ``mean`` at ``x`` with an optional band ``[low, high]``."""

    x: Sequence[float]
    mean: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None


def curve_plot(
    curves: Mapping[str, Curve],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    highlight: str | None = None,
    logx: bool = False,
    logy: bool = False,
    overwrite: bool = False,
) -> Path:
    """Draw ``curves`` (label -> :class:`Curve`) into ``path`` (.png or .svg).

    ``highlight`` is drawn thicker and on top (e.g. ``agf``).
    """
    path = Path(path)
    if not curves:
        raise InputError("nothing to plot: curves is empty")
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass overwrite=True to replace it")
    for label, c in curves.items():
        n = len(c.x)
        if len(c.mean) != n or (c.low is not None and len(c.low) != n) or (
            c.high is not None and len(c.high) != n
        ):
            raise InputError(f"curve {label!r}: x, mean, low and high must have the same length")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for k, (label, c) in enumerate(curves.items()):
        main = label == highlight
        x, m = np.asarray(c.x, float), np.asarray(c.mean, float)
        ax.plot(x, m, marker="o", ms=3, lw=2.6 if main else 1.4, color=cmap(k % cmap.N),
                label=label, zorder=3 if main else 2)
        if c.low is not None and c.high is not None:
            ax.fill_between(x, np.asarray(c.low, float), np.asarray(c.high, float),
                            color=cmap(k % cmap.N), alpha=0.15, lw=0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(curves) > 6 else 1, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
