"""Information tensors (GAF Sec. 3.2): per layer, a head-averaged (t, t) capacity matrix.

Each function maps attention ``A`` and its gradient ``G`` (both (L, H, t, t), row = receiving
token; axis 1 = heads) to ``(L, t, t)`` non-negative capacities:

* ``af``:  mean_h(A)                      (attention flow)
* ``gf``:  mean_h(max(G, 0))              (gradient flow)
* ``agf``: mean_h(max(A * G, 0))          (attention x gradient flow; positive part before the mean)

and, not from the paper:

* ``agf_net``: max(sum_h A * G, 0) / H   (the heads netted before the positive part: token j's
  whole part of row i's attention output, as the measured residual self-edge takes the stream's;
  the tensor of the default flow ``agf_cp`` and of ``agf_rp``, :mod:`gaflow.flow.constructions`)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError, UnknownNameError

TensorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

INFORMATION_TENSORS: dict[str, TensorFn] = {
    "af": lambda a, g: a.mean(axis=1),
    "gf": lambda a, g: g.clip(min=0.0).mean(axis=1),
    "agf": lambda a, g: (a * g).clip(min=0.0).mean(axis=1),
    "agf_net": lambda a, g: (a * g).sum(axis=1).clip(min=0.0) / a.shape[1],
}
#: the built-in tensors: written once for NumPy arrays and torch tensors alike, and elementwise
#: in the token pair (i, j), so that they may be formed on a padded batch inside the model's
#: pass (:func:`gaflow.capture.capture`, ``tensor=``) and cut to the real tokens afterwards
ELEMENTWISE = frozenset(INFORMATION_TENSORS)


def register_tensor(name: str, fn: TensorFn, *, overwrite: bool = False) -> None:
    """Register ``fn(A, G) -> (L, t, t)`` as an information tensor usable as ``method=name``."""
    if not isinstance(name, str) or not name:
        raise InputError("an information tensor needs a non-empty string name")
    if name in INFORMATION_TENSORS and not overwrite:
        raise InputError(f"information tensor {name!r} exists; pass overwrite=True to replace it")
    if name in ELEMENTWISE:
        raise InputError(f"the built-in information tensor {name!r} cannot be replaced")
    if not callable(fn):
        raise InputError(f"information tensor {name!r} must be callable (A, G) -> capacities")
    INFORMATION_TENSORS[name] = fn


def information_tensor(name: str, attentions: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Apply the registered tensor ``name`` to (L, H, t, t) arrays; checks the result."""
    if name not in INFORMATION_TENSORS:
        raise UnknownNameError(
            f"unknown method {name!r}; known: {', '.join(sorted(INFORMATION_TENSORS))}"
        )
    caps = np.asarray(INFORMATION_TENSORS[name](attentions, gradients), dtype=np.float64)
    expected = (attentions.shape[0], attentions.shape[2], attentions.shape[3])
    return check_tensor(name, caps, expected)


def check_tensor(name: str, caps: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    """``caps`` if it has the ``expected`` shape and is finite and non-negative."""
    if caps.shape != expected:
        raise InputError(f"information tensor {name!r} returned shape {caps.shape}, not {expected}")
    if not np.isfinite(caps).all() or (caps < 0).any():
        raise InputError(f"information tensor {name!r} returned negative or non-finite capacities")
    return caps
