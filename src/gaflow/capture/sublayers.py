"""The output of each attention sub-block, found without per-architecture code.

``residual="gradient"`` for generation (:func:`gaflow.flow.seq2seq.gradient_self_edges`) splits
the residual stream into its parts: the embeddings and, per layer, the attention output(s)
before they are added to the stream, and the MLP output (the rest). Hugging Face models return
the attention weights but not the attention outputs; a forward hook on every module records the
tuples modules return, and the innermost module whose output holds a layer's attention weights
is that layer's attention: its first element is the attention output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import ModelError


@contextmanager
def attention_outputs(model: torch.nn.Module, active: bool = True) -> Iterator[list]:
    """Record every module's tuple output during a forward pass (when ``active``);
    :func:`match_attention` then finds, for each returned attention tensor, the output of the
    module that made it."""
    seen: list = []
    if not active:
        yield seen
        return

    def hook(_module, _args, output):
        if isinstance(output, tuple):
            seen.append(output)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def match_attention(seen: list, attentions) -> list[torch.Tensor]:
    """Per layer, the first element (the (B, t, d) attention output, before the residual add)
    of the innermost module output that contains that layer's attention weights."""
    found = []
    for layer, att in enumerate(attentions):
        hit = next((o for o in seen if any(x is att for x in o)), None)  # innermost returns first
        if hit is None or not isinstance(hit[0], torch.Tensor) or hit[0].dim() != 3:
            raise ModelError(f"could not find the attention output of layer {layer}")
        found.append(hit[0])
    return found
