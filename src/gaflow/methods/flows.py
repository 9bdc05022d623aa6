"""The flow methods: a :class:`~gaflow.flow.constructions.Construction` as a registered method.

capture (A, dA, the residual stream) -> information tensor (+ residual self-edges) -> layered
graph -> routing (the central maximum flow of the barrier solver, or proportional routing) ->
per-token flow. The paper's methods ``agf``, ``af``, ``gf`` (and every tensor added with
:func:`register_tensor`) are the tensor alone; :func:`register_flow` adds residual edges, another
objective, weights or routing on the same graph.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..capture import capture
from ..capture.attention import OBJECTIVES
from ..errors import EmptyFlowWarning, InputError
from ..flow.constructions import (
    DEFAULT_CONSTRUCTION,
    GRADIENTS,
    RESIDUAL_PROPORTIONAL,
    ROUTINGS,
    WEIGHTS,
    Construction,
)
from ..flow.graph import build_graph
from ..flow.routing import proportional_flow
from ..flow.seq2seq import check_residual
from ..flow.tensors import (
    ELEMENTWISE,
    INFORMATION_TENSORS,
    TensorFn,
    check_tensor,
    information_tensor,
)
from ..flow.tensors import register_tensor as _register_tensor_fn
from ..solvers import solve_flow
from .base import METHODS, Attributions, Method, Request, register_method

CENTRAL_OPTIONS = ("outputs", "mu", "rtol", "keep_flows", "backend", "device")
#: proportional routing is exact: no barrier, no solver accuracy, no solver backend
PROPORTIONAL_OPTIONS = ("outputs", "keep_flows")


def _real_block(a: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``a[:, :, real][:, :, :, real]`` of an (L, H, t, t) array: a view when the real tokens are
    one run of positions (right or left padding), else a copy."""
    if real.size and int(real[-1]) - int(real[0]) + 1 == real.size:
        run = slice(int(real[0]), int(real[-1]) + 1)
        return a[:, :, run, run]
    return a[:, :, real][:, :, :, real]


def output_positions(outputs, n_real: int) -> list[int] | None:
    """The super-sink's tokens for one text: ``None`` = all (``"all"``), ``[0]`` for
    ``"first"``, or the integer positions given (checked against the text's length)."""
    from .. import validate

    outputs = validate.explain_outputs(outputs)
    if isinstance(outputs, str):
        return None if outputs == "all" else [0]
    validate.check_range(outputs, n_real)
    return outputs


class FlowMethod(Method):
    """A flow: the construction's capacities, routed from the inputs to the outputs."""

    kind = "flow"

    def __init__(self, construction: Construction):
        super().__init__(construction.name, construction.description,
                         "Azarkhalili & Libbrecht 2025 (GAF)")
        self.construction = construction
        if construction.routing == "central":
            self.options = CENTRAL_OPTIONS
        else:
            self.options = PROPORTIONAL_OPTIONS
            self.hint = (f". {self.name!r} routes in proportion to capacity and has no barrier: "
                         "mu, rtol, backend and device apply to the central maximum flow (the "
                         "barrier solver), e.g. method='agf'")

    def attribute(self, request: Request) -> Attributions:
        spec, opts = self.construction, {**request.options}
        n = request.mask.shape[0]
        # a built-in tensor is formed inside the pass: only (B, L, t, t) leaves the model
        in_pass = spec.tensor in ELEMENTWISE and spec.weights == "attention"
        cap = capture(request.model, request.inputs, [request.target] * n,
                      stream=spec.measured_residual, objective=spec.objective,
                      values=spec.weights == "norms",
                      tensor=INFORMATION_TENSORS[spec.tensor] if in_pass else None,
                      conservative=spec.gradients == "conservative")
        reals = [np.flatnonzero(cap.mask[b]) for b in range(n)]
        caps = []
        for b, r in enumerate(reals):
            if in_pass:
                block = cap.tensor[b][:, r][:, :, r]
                tensor = check_tensor(spec.tensor, block, block.shape)
            else:
                weights = cap.attentions[b]
                if spec.weights == "norms":  # A_h[i, j] || v_{h, j} W_O^h ||, per sender j
                    weights = weights * cap.value_norms[b][:, :, None, :]
                tensor = information_tensor(spec.tensor, _real_block(weights, r),
                                            _real_block(cap.gradients[b], r))
            caps.append(spec.capacities(
                tensor, None if cap.stream is None else cap.stream[b][:, r], cap.heads))
        outputs = opts.get("outputs", "all")
        outs = [output_positions(outputs, len(r)) for r in reals]
        keep = bool(opts.get("keep_flows", False))
        if spec.routing == "proportional":
            routed = [proportional_flow(build_graph(c, o)) for c, o in zip(caps, outs,
                                                                           strict=True)]
            scores = [r[0] for r in routed]
            values = [float(r[1]) for r in routed]
            flows = [r[2] if keep else None for r in routed]
            solver = [{"routing": "proportional", "iterations": 0, "mu_final": 0.0,
                       "error_estimate": 0.0, "converged": True} for _ in range(n)]
        else:
            sols = solve_flow(caps, outs, mu=opts.get("mu"), rtol=opts.get("rtol", 1e-6),
                              keep_flows=keep, backend=opts.get("backend", "numpy"),
                              device=opts.get("device"))
            scores = [s.attributions for s in sols]
            values = [float(s.value) for s in sols]
            flows = [s.layer_flows for s in sols]
            solver = [{"routing": "central", "iterations": s.iterations, "mu_final": s.mu,
                       "error_estimate": s.error_estimate, "converged": s.converged}
                      for s in sols]
        empty = [b for b in range(n) if values[b] <= 0.0]
        if empty:
            warnings.warn(
                f"{self.name}: no flow reaches the output for example(s) {empty} of this batch "
                "(no path of positive capacity from the tokens to the prediction), so every "
                "score is 0; another method (e.g. 'agf' or a baseline) may still explain it",
                EmptyFlowWarning, stacklevel=4)
        config = {
            "construction": {"tensor": spec.tensor, "weights": spec.weights,
                             "residual": spec.residual, "objective": spec.objective,
                             "routing": spec.routing, "gradients": spec.gradients},
            "outputs": outputs if isinstance(outputs, str) else list(outputs),
            "mu": opts.get("mu"),
            "rtol": opts.get("rtol", 1e-6),
            "backend": opts.get("backend", "numpy") if spec.routing == "central" else None,
        }
        return Attributions(cap.logits, cap.targets, scores, values, flows, solver, config)


def register_flow(name: str, tensor: str, *, residual: float | str = 0.0,
                  objective: str = "logit", routing: str = "central", description: str = "",
                  weights: str = "attention", gradients: str = "plain",
                  overwrite: bool = False) -> FlowMethod:
    """Register a flow construction usable as ``gaflow.explain(..., method=name)``.

    Args:
        name: the method name (must not clash with another method).
        tensor: a registered information tensor (``agf``, ``af``, ``gf``, ``agf_net``, ...).
        residual: ``0`` (none), a share in ``(0, 1]``, or ``"gradient"`` (measured; post-norm
            encoders, :data:`gaflow.capture.stream.POST_NORM_ENCODERS`).
        objective: ``"logit"`` or ``"contrast"``.
        routing: ``"central"`` or ``"proportional"``.
        weights: ``"attention"`` or ``"norms"``.
        gradients: ``"plain"`` (the model's backward pass) or ``"conservative"``
            (conservative propagation, :mod:`gaflow.capture.conservative`).
        overwrite: replace a method of the same name.
    """
    if not isinstance(name, str) or not name:
        raise InputError("a flow needs a non-empty string name")
    if name in INFORMATION_TENSORS and name != tensor:
        raise InputError(f"{name!r} is an information tensor (the paper's flow on it is the "
                         "method of that name); choose another name")
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
    if gradients not in GRADIENTS:
        raise InputError(f"gradients must be one of {GRADIENTS}, got {gradients!r}")
    method = FlowMethod(Construction(name, tensor, residual, objective, routing,
                                     description or f"flow on {tensor}", weights, gradients))
    return register_method(method, overwrite=overwrite)  # type: ignore[return-value]


def register_tensor(name: str, fn: TensorFn, *, overwrite: bool = False) -> FlowMethod:
    """Register ``fn(A, G) -> (L, t, t)`` as an information tensor, and the paper's flow on it
    (attention edges only, central maximum flow) as the method ``name``."""
    if isinstance(name, str) and name in METHODS and not overwrite:
        raise InputError(f"method {name!r} exists; pass overwrite=True to replace it")
    _register_tensor_fn(name, fn, overwrite=overwrite)
    return _paper_flow(name, f"the paper's flow on the registered tensor {name!r}",
                       overwrite=overwrite)


def _paper_flow(tensor: str, description: str, overwrite: bool = False) -> FlowMethod:
    method = FlowMethod(Construction(tensor, tensor, description=description))
    return register_method(method, overwrite=overwrite)  # type: ignore[return-value]


register_method(FlowMethod(DEFAULT_CONSTRUCTION))
register_method(FlowMethod(RESIDUAL_PROPORTIONAL))
_paper_flow("agf", "the paper's attention x gradient flow (central maximum flow)")
_paper_flow("af", "the paper's attention flow (central maximum flow)")
_paper_flow("gf", "the paper's gradient flow (central maximum flow)")
_paper_flow("agf_net", "attention x gradient with the heads netted, central maximum flow")
