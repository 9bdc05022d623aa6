"""One forward + backward pass: post-softmax attentions A^l and their gradients dy/dA^l.

GAF (Azarkhalili & Libbrecht 2025), Sec. 3.1: the gradient is that of the target-class logit.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError, ModelError


@dataclass
class Capture:
    """What one batched pass recorded (numpy, float64 for the downstream math).

    Attributes:
        attentions: (B, L, H, t, t) post-softmax attention, row = query (receiving) token.
        gradients: (B, L, H, t, t) d logit[target] / d attention.
        mask: (B, t) bool, real (non-padding) tokens.
        logits: (B, C) classifier logits.
        targets: (B,) target class per example.
    """

    attentions: np.ndarray
    gradients: np.ndarray
    mask: np.ndarray
    logits: np.ndarray
    targets: np.ndarray


def ensure_eager(model: torch.nn.Module) -> None:
    """Switch a model to eager attention (SDPA / flash kernels return no attention weights)."""
    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    if impl in (None, "eager"):
        return
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            return
        except Exception as exc:  # pragma: no cover - depends on the architecture
            raise ModelError(
                f"the model uses {impl!r} attention, which returns no attention weights, and "
                f"switching it to eager failed ({exc}). Load it with "
                f"from_pretrained(..., attn_implementation='eager')."
            ) from exc
    config._attn_implementation = "eager"  # older transformers
    warnings.warn(f"switched the model's attention from {impl!r} to 'eager'", stacklevel=3)


@contextmanager
def differentiable(model: torch.nn.Module):
    """Make the forward graph differentiable even when every weight is frozen
    (``requires_grad=False``, e.g. a merged LoRA model, or only the head trainable): a hook
    marks the input embeddings' output as requiring grad when it does not already. Only
    activation gradients are taken (never weight gradients); the hook is removed on exit."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is None:
        yield
        return

    def hook(_module, _args, output):
        if isinstance(output, torch.Tensor) and not output.requires_grad:
            return output.detach().requires_grad_(True)
        return output

    handle = emb.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def resolve_targets(logits: torch.Tensor, targets: list[int | None]) -> list[int]:
    """Per example, the requested class (checked) or the predicted one for ``None``."""
    n_classes = logits.shape[1]
    chosen = []
    for b, tgt in enumerate(targets):
        if tgt is None:
            chosen.append(int(logits[b].argmax()))
        elif not 0 <= int(tgt) < n_classes:
            raise InputError(f"target {tgt} out of range for a model with {n_classes} classes")
        else:
            chosen.append(int(tgt))
    return chosen


def capture(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    targets: list[int | None],
) -> Capture:
    """Run the model with attentions kept in the graph and back-propagate the target logits.

    Args:
        model: a Hugging Face sequence classifier (in eval mode).
        inputs: tokenizer output (``input_ids``, ``attention_mask``, ...) for a batch.
        targets: per example, a class index or ``None`` for the predicted class.
    """
    ensure_eager(model)
    model.eval()
    with torch.enable_grad(), differentiable(model):
        out = model(**inputs, output_attentions=True)
        attentions = getattr(out, "attentions", None)
        if not attentions:
            raise ModelError(
                "the model returned no attention weights; load it with "
                "attn_implementation='eager' (SDPA and flash attention cannot return them)"
            )
        logits = out.logits
        if logits.ndim != 2:
            raise ModelError(
                f"expected classifier logits (batch, classes), got {tuple(logits.shape)}"
            )
        chosen = resolve_targets(logits, targets)
        idx = torch.tensor(chosen, device=logits.device)
        picked = logits.gather(1, idx[:, None]).sum()
        grads = torch.autograd.grad(picked, list(attentions), allow_unused=True)
    if any(g is None for g in grads):
        raise ModelError(
            "the target logit does not depend on the returned attention tensors (no gradient); "
            "this model's attentions are not part of its computation graph"
        )
    attn = np.stack([a.detach().double().cpu().numpy() for a in attentions], axis=1)
    grad = np.stack([g.detach().double().cpu().numpy() for g in grads], axis=1)
    if not (np.isfinite(attn).all() and np.isfinite(grad).all()):
        raise ModelError("attention weights or their gradients contain NaN or inf")
    mask = inputs.get("attention_mask")
    mask_np = (
        np.ones(attn.shape[0:1] + attn.shape[-1:], dtype=bool)
        if mask is None
        else mask.detach().cpu().numpy().astype(bool)
    )
    return Capture(
        attentions=attn,
        gradients=grad,
        mask=mask_np,
        logits=logits.detach().double().cpu().numpy(),
        targets=np.array(chosen),
    )
