"""``solve_flow``: the public entry point of the barrier max-flow solver."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import validate
from ..errors import InputError
from ..flow.graph import LayeredGraph, build_graph
from . import face, maxflow, path, primal_dual
from .face import Finisher
from .newton import NumpyKernels


@dataclass
class FlowSolution:
    """The unique barrier-regularised (or central) maximum flow of a layered graph.

    Attributes:
        attributions: (t,) flow on ``s -> (0, j)``, in the units of the capacities (GAF Eq. 6).
        value: the flow value ``F`` (= ``attributions.sum()``: efficiency).
        iterations: Newton steps taken.
        mu: the barrier weight of the last centring stage (relative to the largest capacity).
        error_estimate: for ``mu=None``, the estimated ``max|phi - phi*|`` in normalised units.
        converged: whether the accuracy contract was met (``status == "converged"``).
        layer_flows: (L, t, t) flow on ``(l, j) -> (l+1, i)`` when ``keep_flows=True``.
        status: how the run ended: ``"converged"``, ``"max_iter"`` (Newton steps spent),
            ``"mu_floor"`` (``mu`` fell below 1e-13 first) or ``"breakdown"`` (the Newton
            system could not be factored); anything but ``"converged"`` came with a
            :class:`~gaflow.errors.ConvergenceWarning`.
        message: why the run ended, in words (empty when converged).
        face: the answer is the certified centre of the optimal face
            (:mod:`gaflow.solvers.face`), found from a maximum flow, by primal-dual
            iterations or at the end of the path (``mu`` is then 0, or the ``mu`` of the
            path's last stage).
    """

    attributions: np.ndarray
    value: float
    iterations: int
    mu: float
    error_estimate: float
    converged: bool
    layer_flows: np.ndarray | None = None
    status: str = path.CONVERGED
    message: str = ""
    face: bool = False


BACKENDS = ("numpy", "torch")
STRATEGIES = ("face", "finish", "primal_dual", "path")


def solve_flow(
    capacities,
    outputs=None,
    mu: float | None = None,
    *,
    tokens=None,
    rtol: float = 1e-6,
    keep_flows: bool = False,
    backend: str = "numpy",
    device=None,
    strategy: str = "face",
) -> FlowSolution | list[FlowSolution]:
    """Barrier-regularised maximum flow through a layered attribution graph.

    Args:
        capacities: (L, t, t) real array >= 0 (complex is an error); ``capacities[l, i, j]``
            is the capacity of the edge from token ``j`` at layer ``l`` to token ``i`` at layer
            ``l+1``. A list or tuple of such arrays (NumPy arrays or tensors; ``t`` may differ,
            ``L`` may not) is a batch, and a list of solutions comes back.
        outputs: a list of integer token positions linked to the super-sink (``None``: all
            tokens; floats, bools and a bare integer are errors); for a batch, ``None`` or one
            such entry per graph.
        mu: barrier weight relative to the largest capacity. ``None`` (default) gives the
            central maximum flow, the ``mu -> 0`` limit, to ``rtol`` in ``max|dphi| / max|phi|``.
        tokens: optional (t,) bool mask of real tokens (padding positions are not nodes); for a
            batch, ``None`` or one entry per graph.
        rtol: accuracy contract of ``mu=None``.
        keep_flows: also return the (L, t, t) edge flows.
        backend: ``"numpy"`` (SciPy BLAS, one graph at a time) or ``"torch"`` (the same
            iteration batched over graphs with batched Cholesky, float64, on ``device``).
        device: torch device for ``backend="torch"`` (default ``"cpu"``), e.g. ``"cuda"``.
        strategy: ``mu=None``, NumPy backend: how the ``mu -> 0`` limit is reached.
            ``"face"`` (default): no ``mu`` path: one exact maximum flow (integer Dinic,
            refined where rounding matters), the optimal face from the SCCs of its residual
            graph, and that face's analytic centre by one centring from the clipped maximum
            flow (:func:`gaflow.solvers.face.from_max_flow`); ``"finish"`` where that is not
            certified. ``"finish"``: the path, ended at the first stage from which the optimal
            face can be identified and certified, with the centre of that face
            (:mod:`gaflow.solvers.face`); ``"primal_dual"``: Mehrotra iterations to the face
            (:mod:`gaflow.solvers.primal_dual`), ``"finish"`` where no face is certified;
            ``"path"``: the path alone. All give the same limit to ``rtol``
            (benchmarks/results/solver.md compares them). The torch backend always follows
            the path.

    Returns:
        A :class:`FlowSolution` (a list for a batch); tokens with no usable path get exactly 0.
    """
    mu_f = validate.mu(mu)
    rtol = validate.rtol(rtol)
    keep_flows = validate.flag(keep_flows, "keep_flows")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    backend = validate.backend(backend)
    device = validate.device(backend, device)
    maxflow.engine()  # a bad GAFLOW_MAXFLOW is refused whatever the strategy and the graph
    if strategy == "primal_dual" and (backend == "torch" or mu_f is not None):
        raise InputError("strategy='primal_dual' applies to the central flow (mu=None) of the "
                         "numpy backend; the torch backend and a fixed mu follow the path")
    batch = _is_batch(capacities)
    items = list(capacities) if batch else [capacities]
    if batch and not items:
        raise InputError("an empty batch of capacities: pass at least one (L, t, t) array")
    items = [validate.real_capacities(c) for c in items]
    outs = _per_item(outputs, len(items), "outputs", batch)
    outs = [validate.positions(o, f"outputs[{k}]" if batch else "outputs")
            for k, o in enumerate(outs)]
    masks = _per_item(tokens, len(items), "tokens", batch)
    graphs = [build_graph(_to_numpy(c), o, m) for c, o, m in zip(items, outs, masks, strict=True)]
    if mu_f is None:
        graphs = [flow_units(g) for g in graphs]
    if backend == "torch":
        solutions = _solve_torch(graphs, mu_f, rtol, keep_flows, device, batch)
    else:
        solutions = [_solve_numpy(g, mu_f, rtol, keep_flows, strategy) for g in graphs]
    return solutions if batch else solutions[0]


def flow_units(graph: LayeredGraph) -> LayeredGraph:
    """The graph in units of an upper bound on its maximum flow, where that bound is below 1.

    ``build_graph`` divides by the largest capacity. When one layer's capacities are orders of
    magnitude below another's, the maximum flow is tiny in those units and the ``mu -> 0``
    path (``mu`` relative to the units, floored near 1e-13) ends long before the barrier
    stops mattering: the flow came back ~20% low at a layer scaled by 1e-13, with no warning.
    Dividing by the bound of :func:`flow_bound` (when it is below 1) makes ``F <= 1`` with a
    bottleneck of order 1, whatever the other layers' or edges' scales (with every edge scaled
    by 10^U(-20, 20), 6 of 150 small random graphs came back up to 11% low with the cruder
    bound ``min_k sum(caps[k])``, none with this one). The central flow, a ``mu -> 0`` limit,
    does not depend on the units; graphs whose bound is at least 1 are left as they are.
    """
    if graph.empty:
        return graph
    bound = flow_bound(graph)
    if bound >= 1.0:
        return graph
    return replace(graph, caps=graph.caps / bound, scale=graph.scale * bound)


def flow_bound(graph: LayeredGraph) -> float:
    """An upper bound on the maximum flow: what can reach each node, layer by layer.

    ``b(0, j)`` is the capacity leaving ``(0, j)``; ``b(k+1, i) = sum_j min(caps[k, i, j],
    b(k, j))`` capped by the capacity leaving ``(k+1, i)``; ``F <= sum_i b(L, i)``. At most
    ``min_k sum(caps[k])`` (each layer is a cut, and the smaller of the two is returned), and
    far below it when a layer's large capacities sit behind small ones.
    """
    caps = graph.caps
    reach = caps[0].sum(axis=0)
    for k in range(caps.shape[0]):
        reach = np.minimum(caps[k], reach[None, :]).sum(axis=1)
        if k + 1 < caps.shape[0]:
            reach = np.minimum(reach, caps[k + 1].sum(axis=0))
    return min(float(reach.sum()), float(caps.sum(axis=(1, 2)).min()))


def _is_batch(capacities) -> bool:
    """A list/tuple of arrays or tensors is a batch; nested lists of numbers are one graph."""
    if not isinstance(capacities, list | tuple):
        return False
    return not capacities or all(hasattr(c, "shape") for c in capacities)


def _to_numpy(c) -> np.ndarray:
    if hasattr(c, "detach"):  # a torch tensor
        return c.detach().cpu().double().numpy()
    return c


def _per_item(value, n: int, name: str, batch: bool) -> list:
    if not batch or value is None:
        return [value] * n
    if not isinstance(value, list | tuple) or len(value) != n:
        raise InputError(f"for a batch of {n} graphs, {name} must be None or a list of {n} entries")
    return list(value)


def _empty(graph, mu, keep_flows) -> FlowSolution:
    flows = np.zeros_like(graph.caps) if keep_flows else None
    t = graph.n_tokens
    return FlowSolution(np.zeros(t), 0.0, 0, 0.0 if mu is None else mu, 0.0, True, flows)


_CONTROLLER = None


def _one_blas_thread():
    """Context in which every loaded BLAS runs on one thread.

    Measured on the 2-core machine of benchmarks/results/solver.md: with OpenBLAS on 2 threads
    (NumPy's and SciPy's pools both loaded, plus torch's OpenMP pool) the Newton steps were 1.7x
    to 3.5x slower than on one thread at every size from L=12, t=64 to t=512.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _solve_numpy(graph, mu, rtol, keep_flows, strategy="face") -> FlowSolution:
    if graph.empty:
        return _empty(graph, mu, keep_flows)
    kernels = NumpyKernels()
    finisher = Finisher([graph], rtol) if strategy != "path" and mu is None else None
    spent = 0
    with _one_blas_thread():
        if finisher is not None and strategy == "primal_dual":
            pd = primal_dual.solve(graph, rtol)
            if pd.x is not None:
                return _face_solution(graph, pd, keep_flows)
            spent = pd.steps
        elif finisher is not None and strategy == "face":
            fr = face.from_max_flow(graph, flow_bound(graph), rtol)
            if fr.x is not None:
                return _face_solution(graph, fr, keep_flows)
            spent = fr.steps
        res = path.solve(kernels, kernels.batch([graph]), 1, mu=mu, rtol=rtol, finish=finisher)
    x, scale = res.x[0], graph.scale
    return FlowSolution(
        attributions=np.where(graph.source, x.source, 0.0) * scale,
        value=float(x.value) * scale,
        iterations=res.iterations[0] + spent,
        mu=res.mu[0],
        error_estimate=res.error_estimate[0] * scale,
        converged=res.converged[0],
        layer_flows=x.layers * scale if keep_flows else None,
        status=res.status[0],
        message=res.message[0],
        face=finisher is not None and finisher.used[0],
    )


def _face_solution(graph, pd, keep_flows) -> FlowSolution:
    """The certified centre of the optimal face found after primal-dual iterations."""
    x, scale = pd.x, graph.scale
    err = float(np.sqrt(pd.decrement) * np.abs(x.source).max())
    return FlowSolution(
        attributions=np.where(graph.source, x.source, 0.0) * scale,
        value=float(np.where(graph.source, x.source, 0.0).sum()) * scale,
        iterations=pd.steps,
        mu=0.0,
        error_estimate=err * scale,
        converged=True,
        layer_flows=x.layers * scale if keep_flows else None,
        face=True,
    )


def _solve_torch(graphs, mu, rtol, keep_flows, device, batch) -> list[FlowSolution]:
    import torch

    from .torch_newton import TorchKernels, stack_graphs

    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for, but torch sees no CUDA device")
    out: list[FlowSolution | None] = [None] * len(graphs)
    todo = [k for k, g in enumerate(graphs) if not g.empty]
    for k, g in enumerate(graphs):
        if g.empty:
            out[k] = _empty(g, mu, keep_flows)
    if todo:
        bg = stack_graphs([graphs[k] for k in todo], dev, torch.float64)
        labels = [f"graph {k}" for k in todo] if batch else None
        threads = torch.get_num_threads()
        if dev.type == "cpu":  # as _one_blas_thread; measured in REPORT-16 / README
            torch.set_num_threads(1)
        try:
            res = path.solve(TorchKernels(dev), bg, len(todo), mu=mu, rtol=rtol, labels=labels)
        finally:
            torch.set_num_threads(threads)
        x = res.x
        source = x.source.cpu().numpy()
        value = x.value.cpu().numpy()
        layers = x.layers.cpu().numpy() if keep_flows else None
        for j, k in enumerate(todo):
            g, n = graphs[k], graphs[k].n_tokens
            out[k] = FlowSolution(
                attributions=np.where(g.source, source[j, :n], 0.0) * g.scale,
                value=float(value[j]) * g.scale,
                iterations=res.iterations[j],
                mu=res.mu[j],
                error_estimate=res.error_estimate[j] * g.scale,
                converged=res.converged[j],
                layer_flows=layers[j, :, :n, :n] * g.scale if keep_flows else None,
                status=res.status[j],
                message=res.message[j],
            )
    return out  # type: ignore[return-value]
