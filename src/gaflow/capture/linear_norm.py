"""Normalisations with their scale held fixed in the backward pass (forward values unchanged).

A LayerNorm / RMSNorm is scale invariant, so gradient x activation over the parts of the stream
that enters it sums to zero; with the scale (sigma / rms) detached the layer is affine in its
input and gradient x activation splits the output conservatively (Ali et al. 2022, *XAI for
Transformers: better explanations through conservative propagation*). Used by the measured
residual (``residual="gradient"``) of generation and of encoder classifiers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import ModelError


@contextmanager
def linear_norms(model, active: bool = True) -> Iterator[None]:
    """Hold every normalisation's scale fixed in the backward pass (forward values unchanged):
    LayerNorm ``(x - mean) / sigma`` and RMSNorm ``x / rms`` with ``sigma`` / ``rms`` detached.

    A normalisation is scale invariant (``x . dLN(x)/dx = 0``): over the parts of the stream that
    enters the final one, ``grad . part`` sums to zero whatever the parts carry. With the scale
    held fixed the layer is linear and gradient x activation splits the logit conservatively
    (the LayerNorm rule of Ali et al. 2022, *XAI for Transformers: better explanations through
    conservative propagation*).
    """
    if not active:
        yield
        return
    with patched_forwards([(mod, fn) for mod in model.modules()
                           if (fn := linear_norm_forward(mod)) is not None]):
        yield


@contextmanager
def patched_forwards(pairs) -> Iterator[None]:
    """Give each module of ``pairs`` (a list of ``(module, forward)``) that forward for the
    block, as an instance attribute, and restore the class's forward after it."""
    patched = []
    try:
        for mod, fn in pairs:
            mod.forward = fn
            patched.append(mod)
        yield
    finally:
        for mod in patched:
            del mod.forward


def linear_norm_forward(mod):
    """The scale-detached forward of a LayerNorm / RMSNorm module, None for other modules."""
    if isinstance(mod, torch.nn.LayerNorm):
        if len(mod.normalized_shape) != 1:
            raise ModelError(f"cannot linearise {type(mod).__name__} over several dimensions")

        def layer_norm(x):
            centred = x - x.mean(-1, keepdim=True)
            y = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + mod.eps).detach()
            if mod.weight is not None:
                y = y * mod.weight
            return y + mod.bias if mod.bias is not None else y

        return layer_norm
    name = type(mod).__name__
    if name.endswith("RMSNorm") or name == "T5LayerNorm":
        eps = getattr(mod, "variance_epsilon", getattr(mod, "eps", None))
        if eps is None or not isinstance(getattr(mod, "weight", None), torch.Tensor):
            raise ModelError(f"cannot linearise {name}: no weight / epsilon found")

        def rms_norm(x):
            x32 = x.float()
            y = x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + eps).detach()
            return mod.weight * y.to(mod.weight.dtype)

        return rms_norm
    if "Norm" in name and not isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
        raise ModelError(f"cannot linearise the normalisation {name}")
    return None
