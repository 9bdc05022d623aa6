"""Every attribution method behind one registry (``gaflow.explain(..., method=NAME)``).

The flows (:mod:`gaflow.methods.flows`: the default ``agf_cp``, ``agf_rp``, the paper's ``agf``,
``af``, ``gf``) and the baselines (attention, gradient, CAT, GAE modules) are :class:`Method`
objects in :data:`METHODS`; :func:`list_methods` lists them. See :mod:`gaflow.methods.base` for
the interface and the sign convention shared by every method.
"""

from . import (  # noqa: F401  (registration)
    attention,
    cat,
    flows,
    gae,
    gradient,
)
from .base import (
    METHODS,
    Attributions,
    Baseline,
    Batch,
    Method,
    Request,
    get_method,
    method_names,
    register_method,
)
from .flows import FlowMethod, register_flow, register_tensor


def list_methods(kind: str | None = None) -> list[Method]:
    """The registered methods, flows first (the default leads); ``kind``: ``"flow"`` or
    ``"baseline"`` to filter."""
    return [METHODS[n] for n in method_names(kind)]


__all__ = [
    "METHODS",
    "Attributions",
    "Baseline",
    "Batch",
    "FlowMethod",
    "Method",
    "Request",
    "get_method",
    "method_names",
    "list_methods",
    "register_flow",
    "register_method",
    "register_tensor",
]
