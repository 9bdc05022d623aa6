"""Attention flow for generation: ``explain_generation`` for causal decoders (GPT-2, Llama, ...)
and encoder-decoders (T5, BART, Marian), one attribution row per generated token.

Data flow as for classifiers: capture (attentions + the gradient of the produced token's logit)
-> information tensor (af / gf / agf) -> flow graph (:mod:`gaflow.flow.seq2seq`) -> the same
barrier max-flow solver -> :class:`~gaflow.result.GenerationExplanation`.

Modules: :mod:`.driver` (``explain_generation``: the steps above, the same for both
architectures), :mod:`.strategies` (what differs: decoder-only and encoder-decoder),
:mod:`.decoding` (greedy ``model.generate``). The hooks live in :mod:`gaflow.capture`, the graphs
in :mod:`gaflow.flow.seq2seq`, the text table in :mod:`gaflow.viz.text`.
"""

from ..result import GenerationExplanation
from ..viz.text import generation_table
from .driver import (
    POST_NORM_MODEL_TYPES,
    PRE_NORM_MODEL_TYPES,
    explain_generation,
    load_generator,
)

__all__ = [
    "GenerationExplanation",
    "POST_NORM_MODEL_TYPES",
    "PRE_NORM_MODEL_TYPES",
    "explain_generation",
    "generation_table",
    "load_generator",
]
