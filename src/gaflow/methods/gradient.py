"""Gradient and perturbation baselines: gradient × input, Integrated Gradients (captum), and
leave-one-out occlusion.

* ``grad_input``: Σ_d (∂y/∂e_i ⊙ e_i)_d with e_i the word embedding of token i, y the target logit
  (captum's ``InputXGradient`` on the word embeddings).
* ``integrated_gradients``: captum's ``LayerIntegratedGradients`` on the word-embedding layer,
  50 steps (Gauss-Legendre), target logit; the baseline replaces every real non-special token by
  [PAD] (special tokens and the attention mask are kept); summed over the embedding dimension.
* ``occlusion``: p(target | x) − p(target | x with token i deleted); special tokens get 0.
* ``lrp``: conservative propagation (Ali et al. 2022): Σ_d (g_0 ⊙ h_0)_d, gradient × activation at
  the input ``h_0`` of the first layer, the gradient taken with LayerNorm scales and attention
  weights held fixed and activations passing back f(z)/z (:mod:`gaflow.capture.conservative`):
  with biases aside, the scores sum to the target logit.
"""

from __future__ import annotations

import numpy as np
import torch

from ..batching import class_probabilities
from ..capture import differentiable
from ..capture.conservative import conservative
from .base import Batch, register_method, target_logits

IG_STEPS = 50


def grad_input(batch: Batch) -> list[np.ndarray]:
    from captum.attr import InputXGradient

    keys = [k for k in batch.inputs if k != "input_ids"]

    def forward(embeds, *extra):
        return batch.model(inputs_embeds=embeds, **dict(zip(keys, extra, strict=True))).logits

    with torch.no_grad():
        emb = batch.model.get_input_embeddings()(batch.inputs["input_ids"])
    emb.requires_grad_(True)
    attr = InputXGradient(forward).attribute(
        emb, target=list(batch.targets), additional_forward_args=tuple(batch.inputs[k]
                                                                      for k in keys))
    scores = attr.sum(-1).detach().double().cpu().numpy()
    return [scores[b, batch.real(b)] for b in range(scores.shape[0])]


def integrated_gradients(batch: Batch, n_steps: int = IG_STEPS) -> list[np.ndarray]:
    from captum.attr import LayerIntegratedGradients

    keys = [k for k in batch.inputs if k != "input_ids"]

    def forward(input_ids, *extra):
        return batch.model(input_ids=input_ids, **dict(zip(keys, extra, strict=True))).logits

    ids = batch.inputs["input_ids"]
    pad = batch.tokenizer.pad_token_id
    keep = torch.as_tensor(batch.special | ~batch.mask, device=ids.device)
    baseline = torch.where(keep, ids, torch.full_like(ids, pad))
    lig = LayerIntegratedGradients(forward, batch.model.get_input_embeddings())
    res = []
    for b in range(ids.shape[0]):  # one example at a time: n_steps copies of it per pass
        extra = tuple(batch.inputs[k][b : b + 1] for k in keys)
        attr = lig.attribute(
            ids[b : b + 1], baselines=baseline[b : b + 1], target=int(batch.targets[b]),
            additional_forward_args=extra, n_steps=n_steps, internal_batch_size=n_steps,
        )
        scores = attr.sum(-1)[0].detach().double().cpu().numpy()
        res.append(scores[batch.real(b)])
    return res


def occlusion(batch: Batch, chunk: int = 64) -> list[np.ndarray]:
    res = []
    for b in range(batch.mask.shape[0]):
        real = batch.real(b)
        ids = batch.inputs["input_ids"][b, real].tolist()
        special = batch.special[b, real]
        variants = [ids] + [ids[:i] + ids[i + 1 :] for i in range(len(ids)) if not special[i]]
        p = class_probabilities(batch.model, variants, batch.tokenizer, chunk)
        p = p[:, batch.targets[b]]
        scores = np.zeros(len(ids))
        scores[~special] = p[0] - p[1:]
        res.append(scores)
    return res


def lrp(batch: Batch) -> list[np.ndarray]:
    model = batch.model
    with torch.enable_grad(), differentiable(model), conservative(model):
        out = model(**batch.inputs, output_hidden_states=True)
        h0 = out.hidden_states[0]
        (g,) = torch.autograd.grad(target_logits(out.logits, batch.targets), [h0])
    scores = (g * h0).sum(-1).detach().double().cpu().numpy()
    return [scores[b, batch.real(b)] for b in range(scores.shape[0])]


register_method("grad_input", grad_input, "gradient × input embedding")
register_method("integrated_gradients", integrated_gradients,
                "Sundararajan et al. 2017 via captum LayerIntegratedGradients, 50 steps")
register_method("occlusion", occlusion, "leave-one-out by deletion")
register_method("lrp", lrp, "Ali et al. 2022, conservative propagation (gradient × input with "
                "LayerNorm and attention held fixed)")
