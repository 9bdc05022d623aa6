"""The registry of attribution baselines (everything except the GAF flows) and their input.

Sign convention, for every method in one place: a **positive score means the token supports the
explained (target) class**: removing it lowers the target logit / probability, or flow reaches the
output through it. Attention- and flow-based methods are >= 0 by construction; gradient methods
(``grad_input``, ``integrated_gradients``, ``cat``, ``attcat``) and ``occlusion`` can be negative.
Scores are per token, special tokens included, over the real (non-padding) tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError


@dataclass
class Batch:
    """One padded batch as the methods see it.

    Attributes:
        model, tokenizer: the classifier (eval mode, eager attention) and its tokenizer.
        inputs: tokenizer output on the model's device (``input_ids``, ``attention_mask``, ...).
        targets: (B,) resolved target class per example.
        mask: (B, t) bool, real tokens.
        special: (B, t) bool, special tokens ([CLS], [SEP], ...).
    """

    model: torch.nn.Module
    tokenizer: object
    inputs: dict[str, torch.Tensor]
    targets: list[int]
    mask: np.ndarray
    special: np.ndarray

    def real(self, b: int) -> np.ndarray:
        return np.flatnonzero(self.mask[b])


MethodFn = Callable[[Batch], list[np.ndarray]]


@dataclass(frozen=True)
class Method:
    """A baseline: ``fn(batch)`` returns, per example, scores over its real tokens."""

    name: str
    fn: MethodFn
    reference: str


METHODS: dict[str, Method] = {}


def register_method(name: str, fn: MethodFn, reference: str = "", *, overwrite: bool = False):
    """Add an attribution method usable as ``gaflow.explain(..., method=name)``."""
    if not isinstance(name, str) or not name:
        raise InputError("a method needs a non-empty string name")
    if name in METHODS and not overwrite:
        raise InputError(f"method {name!r} exists; pass overwrite=True to replace it")
    METHODS[name] = Method(name, fn, reference)


def target_logits(logits: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """Sum over the batch of each example's target logit (one backward gives every gradient)."""
    idx = torch.tensor(targets, device=logits.device)
    return logits.gather(1, idx[:, None]).sum()


def attentions_of(batch: Batch, grad: bool = False):
    """Forward pass with attentions (and hidden states); (outputs, logits)."""
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        out = batch.model(**batch.inputs, output_attentions=True, output_hidden_states=True)
    return out
