"""Capture: one forward + backward pass that records attentions and their gradients."""

from .attention import Capture, capture, ensure_eager

__all__ = ["Capture", "capture", "ensure_eager"]
