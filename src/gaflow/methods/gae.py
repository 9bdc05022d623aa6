"""Generic Attention Explainability (Chefer, Gur & Wolf, ICCV 2021), encoder rule.

Ā^l = E_h[(∇A^l ⊙ A^l)⁺] (gradient of the target logit), R ← R + Ā^l R from R = I over the layers
(Eq. 5–6 of the paper); the score of token j is R[0, j] − I[0, j], the relevance the first token
([CLS]) receives from j, without the identity's own 1.
"""

from __future__ import annotations

import numpy as np
import torch

from ..capture import differentiable
from .base import Batch, register_method, target_logits


def gae_matrix(att: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """R for (L, H, n, n) attention and gradient."""
    n = att.shape[-1]
    r = np.eye(n)
    for a, g in zip(att, grad, strict=True):
        cam = np.maximum(a * g, 0.0).mean(axis=0)
        r = r + cam @ r
    return r


def gae(batch: Batch) -> list[np.ndarray]:
    with torch.enable_grad(), differentiable(batch.model):
        out = batch.model(**batch.inputs, output_attentions=True)
        grads = torch.autograd.grad(target_logits(out.logits, batch.targets), out.attentions)
    att = np.stack([a.detach().double().cpu().numpy() for a in out.attentions], axis=1)
    grd = np.stack([g.detach().double().cpu().numpy() for g in grads], axis=1)
    res = []
    for b in range(att.shape[0]):
        real = batch.real(b)
        r = gae_matrix(att[b][:, :, real][:, :, :, real], grd[b][:, :, real][:, :, :, real])
        res.append(r[0] - np.eye(len(real))[0])
    return res


register_method("gae", gae, "Chefer et al. 2021, generic attention-model explainability")
