"""Capture: one forward + backward pass that records attentions and their gradients."""

from .attention import Capture, capture, differentiable, ensure_eager, resolve_targets

__all__ = ["Capture", "capture", "differentiable", "ensure_eager", "resolve_targets"]
