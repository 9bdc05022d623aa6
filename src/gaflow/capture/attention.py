"""One forward + backward pass: post-softmax attentions A^l and their gradients dy/dA^l.

GAF (Azarkhalili & Libbrecht 2025), Sec. 3.1: the gradient is that of the target-class logit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError, ModelError


@dataclass
class Capture:
    """What one batched pass recorded (numpy, float64 for the downstream math).

    Attributes:
        attentions: (B, L, H, t, t) post-softmax attention, row = query (receiving) token;
            ``None`` when an information tensor was formed in the pass (``tensor=``).
        gradients: (B, L, H, t, t) d logit[target] / d attention; ``None`` likewise.
        mask: (B, t) bool, real (non-padding) tokens.
        logits: (B, C) classifier logits.
        targets: (B,) target class per example.
        stream: with ``stream=True``, (B, L, t) ``g_l[i] . h_l[i]``: the residual part of the
            target logit at each layer's residual sum (:mod:`gaflow.capture.stream`); else None.
        value_norms: with ``values=True``, (B, L, H, t) norms of each head's transformed value
            vectors (:func:`gaflow.capture.stream.value_norms`); else None.
        tensor: with ``tensor=fn``, (B, L, t, t) ``fn(A_l, G_l)`` per layer, formed in torch in
            float64 from the model's own tensors; else None.
        heads: attention heads per layer (H).
    """

    attentions: np.ndarray | None
    gradients: np.ndarray | None
    mask: np.ndarray
    logits: np.ndarray
    targets: np.ndarray
    stream: np.ndarray | None = None
    value_norms: np.ndarray | None = None
    tensor: np.ndarray | None = None
    embedding_terms: np.ndarray | None = None
    heads: int = 0


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


OBJECTIVES = ("logit", "contrast")


def objective_value(logits: torch.Tensor, targets: list[int], objective: str) -> torch.Tensor:
    """Sum over the batch of each example's objective (see :func:`capture`): one backward pass
    gives every example's gradient."""
    idx = torch.tensor(targets, device=logits.device)[:, None]
    own = logits.gather(1, idx)
    if objective == "logit" or logits.shape[1] < 2:
        return own.sum()
    others = logits.scatter(1, idx, float("-inf"))
    weights = torch.softmax(others.detach(), dim=1)
    return (own[:, 0] - (weights * others.masked_fill(weights == 0, 0.0)).sum(1)).sum()


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
    *,
    stream: bool = False,
    objective: str = "logit",
    values: bool = False,
    tensor: Callable | None = None,
    conservative: bool | tuple[str, ...] = False,
) -> Capture:
    """Run the model with attentions kept in the graph and back-propagate the target logits.

    Args:
        model: a Hugging Face sequence classifier (in eval mode).
        inputs: tokenizer output (``input_ids``, ``attention_mask``, ...) for a batch.
        targets: per example, a class index or ``None`` for the predicted class.
        stream: also measure the residual stream (post-norm encoders,
            :mod:`gaflow.capture.stream`); every gradient, those of the attentions included, is
            then taken with the LayerNorms' scales held fixed (forward values unchanged).
        objective: what the gradients are of: ``"logit"``, the target logit ``z_t`` (GAF
            Sec. 3.1), or ``"contrast"``, the target logit against the other classes,
            ``z_t - sum_{k != t} w_k z_k`` with ``w = softmax`` of the other logits (detached):
            for two classes the log-odds ``z_t - z_o``; in general ``d log p_t / (1 - p_t)``,
            the direction of the target probability without its saturation.
        values: also record the norms of the transformed value vectors (post-norm encoders).
        tensor: an elementwise information tensor ``fn(A, G)`` that works on torch tensors
            (:data:`gaflow.flow.tensors.ELEMENTWISE`): formed per layer on the model's device,
            in float64, so that only the (B, L, t, t) result leaves it, never the (B, L, H, t, t)
            attentions and gradients (``Capture.attentions``/``gradients`` are then None).
        conservative: take every gradient by conservative propagation
            (:mod:`gaflow.capture.conservative`: LayerNorm scales and attention weights held
            fixed, activations by ``f(z)/z``) instead of the model's own backward pass, and
            record ``embedding_terms``; forward values (the logits) are unchanged. A tuple of
            rule names (:data:`gaflow.capture.conservative.RULES`) applies only those.
    """
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    from .conservative import RULES
    from .conservative import conservative as propagation
    from .stream import attention_norms, layer_count, norm_inputs, value_norms

    ensure_eager(model)
    model.eval()
    norms = attention_norms(model, layer_count(model)) if stream else []
    if conservative is True:
        rules = RULES
    elif conservative:
        rules = tuple(conservative)
    else:
        rules = ("norms",) if stream else ()
    with torch.enable_grad(), differentiable(model), propagation(model, rules), \
            norm_inputs(norms, stream) as sums, value_norms(model, values) as vnorms:
        out = model(**inputs, output_attentions=True,
                    output_hidden_states=bool(stream or conservative))
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
        picked = objective_value(logits, chosen, objective)
        if stream and len(sums) != len(attentions):
            raise ModelError(f"found {len(sums)} residual sums for {len(attentions)} layers")
        embedded = [out.hidden_states[0]] if conservative else []
        grads = torch.autograd.grad(picked, [*attentions, *sums, *embedded], allow_unused=True)
    n_att = len(attentions)
    embedding_terms = None
    if conservative:
        if grads[-1] is None:
            raise ModelError("the target logit does not depend on the embeddings' output")
        embedding_terms = (grads[-1] * embedded[0]).sum(-1).detach().double().cpu().numpy()
        grads = grads[:-1]
    stream_terms = None
    if stream:
        if any(g is None for g in grads[n_att:]):
            raise ModelError("the target logit does not depend on the residual stream")
        stream_terms = torch.stack(  # (B, L, t): g_l . h_l, the stream part of each sum
            [(g * h).sum(-1) for g, h in zip(grads[n_att:], out.hidden_states, strict=False)],
            dim=1,
        ).detach().double().cpu().numpy()
        grads = grads[:n_att]
    if any(g is None for g in grads):
        raise ModelError(
            "the target logit does not depend on the returned attention tensors (no gradient); "
            "this model's attentions are not part of its computation graph"
        )
    attn = grad = formed = None
    if tensor is None:
        attn = np.stack([a.detach().double().cpu().numpy() for a in attentions], axis=1)
        grad = np.stack([g.detach().double().cpu().numpy() for g in grads], axis=1)
        finite = np.isfinite(attn).all() and np.isfinite(grad).all()
    else:
        with torch.no_grad():
            formed = torch.stack([tensor(a.detach().double(), g.detach().double())
                                  for a, g in zip(attentions, grads, strict=True)], dim=1)
        finite = bool(torch.isfinite(formed).all()) and all(
            bool(torch.isfinite(x).all()) for x in (*attentions, *grads))
        formed = formed.cpu().numpy()
    if not finite:
        raise ModelError("attention weights or their gradients contain NaN or inf")
    mask = inputs.get("attention_mask")
    batch, t = attentions[0].shape[0], attentions[0].shape[-1]
    mask_np = (
        np.ones((batch, t), dtype=bool)
        if mask is None
        else mask.detach().cpu().numpy().astype(bool)
    )
    return Capture(
        heads=int(attentions[0].shape[1]),
        tensor=formed,
        attentions=attn,
        gradients=grad,
        mask=mask_np,
        logits=logits.detach().double().cpu().numpy(),
        targets=np.array(chosen),
        stream=stream_terms,
        embedding_terms=embedding_terms,
        value_norms=torch.stack(vnorms, dim=1).double().cpu().numpy() if values else None,
    )
