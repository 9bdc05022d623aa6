"""Flow constructions: which information tensor, residual edges, gradient objective and routing
make a flow method.

The paper's methods (``agf``, ``af``, ``gf`` and every tensor added with
:func:`gaflow.register_tensor`) are the tensor alone: attention edges only, the gradient of the
target logit, the central maximum flow (Azarkhalili & Libbrecht 2025). A construction
(registered as a method by :func:`gaflow.register_flow`) adds, on the same layered graph:

* ``residual``: a self-edge ``(l, i) -> (l+1, i)`` for the residual stream: a fixed share of each
  node's in-capacity (``0 < r <= 1``, :func:`~gaflow.flow.seq2seq.with_residual`) or
  ``"gradient"``, measured like the attention edges (gradient x activation of the stream's part
  in the residual sum, positive part, per head: :mod:`gaflow.capture.stream`);
* ``objective``: the gradient of the target logit (``"logit"``) or of the target logit against
  the other classes (``"contrast"``, :func:`gaflow.capture.attention.objective_value`);
* ``gradients``: the model's own backward pass (``"plain"``; with ``residual="gradient"`` the
  LayerNorms' scales are held fixed, as the measured residual needs) or conservative
  propagation (``"conservative"``: LayerNorm scales and attention weights held fixed,
  activations by ``f(z)/z``, :mod:`gaflow.capture.conservative`), under which every edge is a
  part of one conserved split of the target logit;
* ``weights``: the attention weights as they are (``"attention"``), or each weight times the
  norm of the value vector it moves, ``A_h[i, j] || v_{h, j} W_O^h ||`` (``"norms"``: the
  norm-based view of Kobayashi et al. 2020, which ALTI and GlobEnc build on; post-norm
  encoders), before the tensor is formed;
* ``routing``: the central maximum flow (``"central"``, the barrier solver) or the largest flow
  that splits in proportion to capacity at every node (``"proportional"``,
  :mod:`gaflow.flow.routing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .seq2seq import with_residual, with_self_edges

ROUTINGS = ("central", "proportional")
WEIGHTS = ("attention", "norms")
GRADIENTS = ("plain", "conservative")


@dataclass(frozen=True)
class Construction:
    """A named flow method (see the module docstring for the fields)."""

    name: str
    tensor: str
    residual: float | str = 0.0
    objective: str = "logit"
    routing: str = "central"
    description: str = ""
    weights: str = "attention"
    gradients: str = "plain"

    @property
    def measured_residual(self) -> bool:
        return self.residual == "gradient"

    def capacities(self, tensor: np.ndarray, stream: np.ndarray | None,
                   heads: int) -> np.ndarray:
        """(L, t, t) capacities: the information tensor plus the residual self-edges.

        Args:
            tensor: (L, t, t) information tensor of the example's real tokens.
            stream: (L, t) residual parts ``g_l[i] . h_l[i]`` (for ``residual="gradient"``).
            heads: attention heads per layer (the head mean of the tensor).
        """
        if self.measured_residual:
            if stream is None:
                raise InputError(f"flow {self.name!r} needs the residual stream's gradients")
            return with_self_edges(tensor, np.maximum(stream, 0.0) / heads)
        return with_residual(tensor, float(self.residual))


#: The default method of :func:`gaflow.explain`, the CLI and the explorer, chosen on
#: development data (docs/ablation.md, round 3): attention edges ``agf_net`` and the residual
#: stream's self-edges, both measured by gradient x activation of the target logit under
#: conservative propagation (LayerNorm scales and attention weights held fixed, activations by
#: ``f(z)/z``), routed in proportion to capacity.
DEFAULT_METHOD = "agf_cp"
DEFAULT_CONSTRUCTION = Construction(
    DEFAULT_METHOD, "agf_net", residual="gradient", objective="logit",
    routing="proportional", gradients="conservative",
    description="residual-aware AGF of conservative propagation, proportional routing "
                "(the default; docs/ablation.md)",
)
#: The previous default (docs/ablation.md, rounds 1-2): the same graph and routing with the
#: model's own gradients (LayerNorm scales held fixed for the residual).
RESIDUAL_PROPORTIONAL = Construction(
    "agf_rp", "agf_net", residual="gradient", objective="logit", routing="proportional",
    description="residual-aware AGF, proportional routing (the model's own gradients)",
)
