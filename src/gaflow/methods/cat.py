"""CAT and AttCAT (Qiang, Pan, Zhu, Li, Yang; NeurIPS 2022).

With h^l_i the hidden state of token i entering layer l (l = 0 is the embedding output) and y the
target logit: CAT^l_i = Σ_d (∂y/∂h^l_i ⊙ h^l_i)_d. ``cat`` = Σ_l CAT^l_i. ``attcat`` weights each
layer by α^l_i, the layer's attention averaged over heads and over the (real) query rows, i.e. the
mean attention token i receives: ``attcat`` = Σ_l α^l_i CAT^l_i.
"""

from __future__ import annotations

import numpy as np
import torch

from ..capture import differentiable
from .base import Batch, register_method, target_logits


def _cat_terms(batch: Batch):
    with torch.enable_grad(), differentiable(batch.model):
        out = batch.model(**batch.inputs, output_attentions=True, output_hidden_states=True)
        n_layers = len(out.attentions)
        entering = list(out.hidden_states[:n_layers])
        grads = torch.autograd.grad(target_logits(out.logits, batch.targets), entering)
    cat = torch.stack([(g * h).sum(-1) for g, h in zip(grads, entering, strict=True)], dim=1)
    att = torch.stack(list(out.attentions), dim=1)  # (B, L, H, t, t)
    return cat.detach().double().cpu().numpy(), att.detach().double().cpu().numpy()


def _per_example(batch: Batch, weighted: bool) -> list[np.ndarray]:
    cat, att = _cat_terms(batch)  # (B, L, t), (B, L, H, t, t)
    res = []
    for b in range(cat.shape[0]):
        real = batch.real(b)
        terms = cat[b][:, real]
        if weighted:
            a = att[b][:, :, real][:, :, :, real]  # (L, H, n, n)
            alpha = a.mean(axis=(1, 2))  # mean over heads and query rows -> (L, n)
            terms = alpha * terms
        res.append(terms.sum(axis=0))
    return res


def cat(batch: Batch) -> list[np.ndarray]:
    return _per_example(batch, weighted=False)


def attcat(batch: Batch) -> list[np.ndarray]:
    return _per_example(batch, weighted=True)


register_method("cat", cat, "Qiang et al. 2022, causal attention tracing (unweighted)")
register_method("attcat", attcat, "Qiang et al. 2022, attentive class activation tokens")
