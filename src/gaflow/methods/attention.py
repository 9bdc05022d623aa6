"""Attention-only baselines: raw attention, rollout and attention flow (Abnar & Zuidema, 2020).

All three use head-averaged attention restricted to the real tokens, row = receiving token.
``rollout`` and ``attention_flow`` add the residual connection as ``0.5 * A + 0.5 * I``.
The output node is the first token ([CLS]) of the last layer.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from .base import Batch, attentions_of, register_method

FLOW_SCALE = 1e6  # SciPy's max-flow needs integer capacities: attention in units of 1e-6


def head_mean(batch: Batch) -> list[np.ndarray]:
    """Per example, (L, n, n) head-averaged attention over its n real tokens."""
    out = attentions_of(batch)
    att = np.stack([a.detach().double().cpu().numpy() for a in out.attentions], axis=1)
    res = []
    for b in range(att.shape[0]):
        real = batch.real(b)
        res.append(att[b].mean(axis=1)[:, real][:, :, real])
    return res


def residual(a: np.ndarray) -> np.ndarray:
    """0.5 * A + 0.5 * I per layer (rows still sum to 1)."""
    return 0.5 * a + 0.5 * np.eye(a.shape[-1])[None]


def rollout_matrix(a: np.ndarray) -> np.ndarray:
    """R = Â_L ... Â_1 for (L, n, n) attention, Â = 0.5 A + 0.5 I (Abnar & Zuidema Eq. 1)."""
    mats = residual(a)
    r = np.eye(a.shape[-1])
    for layer in mats:
        r = layer @ r
    return r


def raw_attention(batch: Batch) -> list[np.ndarray]:
    """Last-layer attention from the first token, head mean: A^L[0, :]."""
    return [a[-1, 0, :].copy() for a in head_mean(batch)]


def rollout(batch: Batch) -> list[np.ndarray]:
    """Row of the first token in the rollout matrix."""
    return [rollout_matrix(a)[0] for a in head_mean(batch)]


def flow_values(a: np.ndarray, output: int = 0) -> np.ndarray:
    """Attention flow: for each input token j, the exact maximum flow from (layer 0, j) to
    (layer L, ``output``) in the layered graph with capacities 0.5 A + 0.5 I (one max-flow per
    input token, SciPy's exact integer max-flow on capacities rounded to 1e-6)."""
    caps = residual(a)
    n_layers, n, _ = caps.shape
    rows, cols, vals = [], [], []
    for layer in range(n_layers):
        dst, src = np.nonzero(caps[layer] > 0)
        rows.append(layer * n + src)
        cols.append((layer + 1) * n + dst)
        vals.append(np.rint(caps[layer][dst, src] * FLOW_SCALE))
    size = (n_layers + 1) * n
    graph = csr_matrix(
        (np.concatenate(vals).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(size, size),
    )
    sink = n_layers * n + output
    return np.array([maximum_flow(graph, j, sink).flow_value for j in range(n)]) / FLOW_SCALE


def attention_flow(batch: Batch) -> list[np.ndarray]:
    return [flow_values(a) for a in head_mean(batch)]


register_method("attention", raw_attention, "last-layer attention of [CLS], head mean")
register_method("rollout", rollout, "Abnar & Zuidema 2020, attention rollout")
register_method("attention_flow", attention_flow, "Abnar & Zuidema 2020, attention flow")
