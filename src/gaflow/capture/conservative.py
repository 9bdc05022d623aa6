"""Conservative propagation: the backward pass of the network made linear in its input.

Three rules change the backward pass only (every forward value is unchanged):

* ``norms``: every LayerNorm / RMSNorm with its scale held fixed
  (:func:`gaflow.capture.linear_norm.linear_norms`; the LN rule of Ali et al. 2022);
* ``attention``: the attention weights held fixed, ``A`` a constant of the backward pass, so no
  gradient reaches the queries and keys (the AH rule of Ali et al. 2022, *XAI for
  Transformers: better explanations through conservative propagation*); ``dy/dA`` is still
  recorded, as the gradient of the output ``A V`` with respect to ``A``;
* ``activations``: each elementwise activation module ``f`` passes back ``f(z) / z`` instead of
  ``f'(z)`` (the Rescale rule of DeepLIFT with a zero reference, the identity rule of AttnLRP,
  Achtibat et al. 2024; the linearisation DecompX, Modarressi et al. 2023, applies to the MLP).

With all three, the network with its biases set to zero is linear in the stream of every layer
``l`` (``y = J_l h_l``), so gradient x activation splits the target logit exactly:
``sum_i g_l[i] . h_l[i] = y`` at every layer, and every edge of the flow graph measured with these
gradients is a part of one conserved quantity (with biases, their parts are what is left out).
Activations called as functions (``torch.tanh(x)`` in a RoBERTa head) keep their gradient.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch

from ..errors import ModelError
from .linear_norm import linear_norms, patched_forwards

RULES = ("norms", "attention", "activations")
#: the name under which the fixed-attention rule is registered in transformers' AttentionInterface
FIXED_ATTENTION = "gaflow_fixed_attention"
#: |z| below which an activation's ratio f(z)/z is taken at +-TINY (f(0) = 0 for every patched f)
TINY = 1e-6
#: torch activation modules with f(0) = 0 (their ratio f(z)/z is finite at 0)
_TORCH_ACTIVATIONS = (torch.nn.GELU, torch.nn.Tanh, torch.nn.SiLU, torch.nn.Mish, torch.nn.ReLU,
                      torch.nn.LeakyReLU, torch.nn.ELU)


@contextmanager
def conservative(model: torch.nn.Module, rules=RULES) -> Iterator[None]:
    """Apply the conservative-propagation ``rules`` (a subset of :data:`RULES`) to ``model``'s
    backward pass for the duration of the block; forward values are unchanged."""
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise ModelError(f"unknown conservative-propagation rules {unknown}; known: {RULES}")
    with ExitStack() as stack:
        if "norms" in rules:
            stack.enter_context(linear_norms(model))
        if "attention" in rules:
            stack.enter_context(fixed_attention(model))
        if "activations" in rules:
            stack.enter_context(linear_activations(model))
        yield


def _fixed_attention_forward(module, query, key, value, attention_mask, **kwargs):
    """The model's own eager attention with ``A`` detached: ``A`` is computed without gradient
    (so none reaches ``query``/``key``) and made a leaf that requires grad, and the output is
    ``A V`` (checked against the eager output, so a model whose attention is not ``A V`` is
    refused rather than explained wrongly)."""
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if eager is None:
        raise ModelError(f"{type(module).__name__} has no eager_attention_forward: the "
                         "fixed-attention rule cannot be applied to this architecture")
    with torch.no_grad():
        reference, weights = eager(module, query, key, value, attention_mask, **kwargs)
    weights = weights.detach().requires_grad_(True)
    if weights.shape[:2] != value.shape[:2] or weights.shape[-1] != value.shape[-2]:
        raise ModelError(f"{type(module).__name__}: attention weights {tuple(weights.shape)} "
                         f"do not match the values {tuple(value.shape)} (grouped keys/values?)")
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    if not torch.allclose(output, reference, rtol=1e-5, atol=1e-6):
        raise ModelError(f"{type(module).__name__}: the attention output is not A V; the "
                         "fixed-attention rule cannot be applied to this architecture")
    return output, weights


@contextmanager
def fixed_attention(model: torch.nn.Module) -> Iterator[None]:
    """Hold every attention weight fixed in the backward pass (see the module docstring): the
    model runs the registered :data:`FIXED_ATTENTION` implementation instead of ``eager``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    if impl != "eager":
        raise ModelError(f"the fixed-attention rule needs eager attention, not {impl!r}")
    AttentionInterface.register(FIXED_ATTENTION, _fixed_attention_forward)
    # the masks eager attention adds (additive, 0 / -inf), not another implementation's
    AttentionMaskInterface.register(FIXED_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
    config._attn_implementation = FIXED_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = impl


def _is_activation(mod: torch.nn.Module) -> bool:
    if isinstance(mod, _TORCH_ACTIVATIONS):
        return True
    kind = type(mod)
    return kind.__module__ == "transformers.activations" and kind.__name__ not in (
        "LinearActivation", "ClassInstantier")


def ratio_forward(f):
    """``f`` with its gradient replaced by ``f(z) / z`` (forward value exactly ``f(z)``)."""

    def forward(z):
        y = f(z)
        small = z.abs() < TINY
        safe = torch.where(small, torch.where(z < 0, -TINY, TINY).to(z.dtype), z)
        ratio = torch.where(small, f(safe) / safe, y / safe)
        return y.detach() + (z - z.detach()) * ratio.detach()

    return forward


@contextmanager
def linear_activations(model: torch.nn.Module) -> Iterator[None]:
    """Every elementwise activation module passes back ``f(z) / z`` (see the module docstring)."""
    chosen = [mod for mod in model.modules()
              if _is_activation(mod) and "forward" not in vars(mod)]
    for mod in chosen:  # every one checked before any is patched
        with torch.no_grad():
            at_zero = mod(torch.zeros(1))
        if at_zero.abs().item() != 0.0:
            raise ModelError(f"the activation {type(mod).__name__} has f(0) != 0: its ratio "
                             "f(z)/z is unbounded, so the activation rule does not apply")
    with patched_forwards([(mod, ratio_forward(mod.forward)) for mod in chosen]):
        yield
