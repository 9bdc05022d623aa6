"""Flow constructions: which information tensor, residual edges, gradient objective and routing
make a flow method.

The paper's methods (``agf``, ``af``, ``gf`` and every tensor added with
:func:`~gaflow.flow.tensors.register_tensor`) are the tensor alone: attention edges only, the
gradient of the target logit, the central maximum flow (Azarkhalili & Libbrecht 2025). A
construction registered here adds, on the same layered graph:

* ``residual``: a self-edge ``(l, i) -> (l+1, i)`` for the residual stream: a fixed share of each
  node's in-capacity (``0 < r <= 1``, :func:`~gaflow.flow.seq2seq.with_residual`) or
  ``"gradient"``, measured like the attention edges (gradient x activation of the stream's part
  in the residual sum, positive part, per head: :mod:`gaflow.capture.stream`);
* ``objective``: the gradient of the target logit (``"logit"``) or of the target logit against
  the other classes (``"contrast"``, :func:`gaflow.capture.attention.objective_value`);
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

from ..capture.attention import OBJECTIVES
from ..errors import InputError
from .seq2seq import check_residual, with_residual, with_self_edges
from .tensors import INFORMATION_TENSORS

ROUTINGS = ("central", "proportional")
WEIGHTS = ("attention", "norms")


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


#: Named constructions beyond the paper's tensors (``agf``, ``af``, ``gf``).
CONSTRUCTIONS: dict[str, Construction] = {}


def register_flow(name: str, tensor: str, *, residual: float | str = 0.0,
                  objective: str = "logit", routing: str = "central", description: str = "",
                  weights: str = "attention", overwrite: bool = False) -> Construction:
    """Register a flow construction usable as ``gaflow.explain(..., method=name)``.

    Args:
        name: the method name (must not clash with an information tensor or a baseline).
        tensor: a registered information tensor (``agf``, ``af``, ``gf``, ...).
        residual: ``0`` (none), a share in ``(0, 1]``, or ``"gradient"`` (measured; post-norm
            encoders, :data:`gaflow.capture.stream.POST_NORM_ENCODERS`).
        objective: ``"logit"`` or ``"contrast"``.
        routing: ``"central"`` or ``"proportional"``.
        weights: ``"attention"`` or ``"norms"``.
    """
    from ..methods import METHODS

    if not isinstance(name, str) or not name:
        raise InputError("a flow needs a non-empty string name")
    if not overwrite and (name in CONSTRUCTIONS or name in INFORMATION_TENSORS or name in METHODS):
        raise InputError(f"method {name!r} exists; pass overwrite=True to replace it")
    if tensor not in INFORMATION_TENSORS:
        raise InputError(f"unknown information tensor {tensor!r}; known: "
                         f"{', '.join(INFORMATION_TENSORS)}")
    check_residual(residual)
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if routing not in ROUTINGS:
        raise InputError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    if weights not in WEIGHTS:
        raise InputError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    spec = Construction(name, tensor, residual, objective, routing, description, weights)
    CONSTRUCTIONS[name] = spec
    return spec


def flow_methods() -> list[str]:
    """Every flow method: the default first, then the paper's tensors (and registered ones),
    then the registered constructions."""
    return list(dict.fromkeys([DEFAULT_METHOD, *INFORMATION_TENSORS, *CONSTRUCTIONS]))


def flow_construction(method: str) -> Construction | None:
    """The construction of a flow method; ``None`` for a name that is not a flow."""
    if method in CONSTRUCTIONS:
        return CONSTRUCTIONS[method]
    if method in INFORMATION_TENSORS:
        return Construction(method, method, description="the paper's construction")
    return None


#: The default method of :func:`gaflow.explain`, the CLI and the explorer, chosen on
#: development data (docs/ablation.md): attention edges ``agf_net`` and the residual stream's
#: self-edges, both measured by gradient x activation of the target logit with the LayerNorms'
#: scales held fixed, routed in proportion to capacity.
DEFAULT_METHOD = "agf_rp"
CONSTRUCTIONS[DEFAULT_METHOD] = Construction(
    DEFAULT_METHOD, "agf_net", residual="gradient", objective="logit",
    routing="proportional",
    description="residual-aware AGF, proportional routing (the default; docs/ablation.md)",
)
