"""Attribution baselines behind one registry (``gaflow.explain(..., method=NAME)``).

The GAF flows (``agf``, ``af``, ``gf`` and registered information tensors) live in
``gaflow.flow``; everything else is registered here. See :mod:`gaflow.methods.base` for the sign
convention shared by every method.
"""

from . import attention, cat, gae, gradient  # noqa: F401  (registration)
from .base import METHODS, Batch, Method, register_method

__all__ = ["METHODS", "Batch", "Method", "register_method"]
