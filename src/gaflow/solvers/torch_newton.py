"""Batched barrier Newton kernels in PyTorch (CPU or CUDA): those of :mod:`.newton` on a batch.

The same start points, Newton direction (block Cholesky of the block-tridiagonal node system),
step bounds, line search and objective as :mod:`.newton`, over a batch of graphs of different
sizes; :class:`TorchKernels` hands them to the one driver, :func:`gaflow.solvers.path.solve`,
which runs the batch in lock step (each graph with its own ``mu``, stage and stopping decision).
Graphs are padded to the largest ``t``; padding positions are not nodes (their rows of every
Schur complement are the identity), so they change no result.

Per Newton step and layer the work is one batched Cholesky (``torch.linalg.cholesky_ex``), one
batched triangular solve with ``t`` right-hand sides and one batched ``W^T W`` product: ``O(B L
t^3)`` flops, ``O(B L t^2)`` memory, never an ``(L t)^2`` matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..flow.graph import LayeredGraph
from .path import BOUNDARY, LINE_ITERS, LINE_START, SingularSystem


@dataclass
class BatchGraph:
    """Padded stack of layered graphs; shapes (B, L, t, t), (B, t), (B, L+1, t)."""

    caps: torch.Tensor
    live: torch.Tensor
    source: torch.Tensor
    sink: torch.Tensor
    nodes: torch.Tensor


@dataclass
class BatchState:
    """Edge flows of every graph in the batch (normalised units)."""

    layers: torch.Tensor  # (B, L, t, t)
    source: torch.Tensor  # (B, t)
    sink: torch.Tensor  # (B, t)
    value: torch.Tensor  # (B,)



def stack_graphs(
    graphs: list[LayeredGraph], device: str | torch.device | None, dtype: torch.dtype
) -> BatchGraph:
    """Pad graphs to a common token count and move them to ``device``."""
    n_layers = {g.n_layers for g in graphs}
    if len(n_layers) != 1:
        raise InputError(f"a batch must share the number of layers; got {sorted(n_layers)}")
    n_l = n_layers.pop()
    t = max(g.n_tokens for g in graphs)
    b = len(graphs)
    caps = np.zeros((b, n_l, t, t))
    live = np.zeros((b, n_l, t, t), dtype=bool)
    source = np.zeros((b, t), dtype=bool)
    sink = np.zeros((b, t), dtype=bool)
    nodes = np.zeros((b, n_l + 1, t), dtype=bool)
    for k, g in enumerate(graphs):
        n = g.n_tokens
        caps[k, :, :n, :n] = g.caps
        live[k, :, :n, :n] = g.live
        source[k, :n] = g.source
        sink[k, :n] = g.sink
        nodes[k, :, :n] = g.nodes

    def put(a: np.ndarray, dt=None) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dt, device=device)

    return BatchGraph(put(caps, dtype), put(live), put(source), put(sink), put(nodes))


# --------------------------------------------------------------------------- start point


def feasible_start(g: BatchGraph) -> BatchState:
    """Proportional routing of one unit per input node, scaled to half the tightest capacity."""
    caps = g.caps
    n_b, n_layers, t, _ = caps.shape
    node_flow = g.source.to(caps.dtype)
    layers = torch.zeros_like(caps)
    worst = torch.zeros(n_b, dtype=caps.dtype, device=caps.device)
    for k in range(n_layers):
        out_cap = caps[:, k].sum(dim=1)  # (B, t) capacity leaving each node of layer k
        pos = out_cap > 0
        safe = torch.where(pos, out_cap, torch.ones_like(out_cap))
        share = torch.where(pos[:, None, :], caps[:, k] / safe[:, None, :], 0.0)
        layers[:, k] = share * node_flow[:, None, :]
        ratio = torch.where(pos, node_flow / safe, 0.0)
        worst = torch.maximum(worst, ratio.amax(dim=1))
        node_flow = layers[:, k].sum(dim=2)
    factor = 0.5 / worst
    return BatchState(
        layers=layers * factor[:, None, None, None],
        source=g.source.to(caps.dtype) * factor[:, None],
        sink=torch.where(g.sink, node_flow * factor[:, None], 0.0),
        value=g.source.sum(dim=1).to(caps.dtype) * factor,
    )


def interior_start(g: BatchGraph) -> BatchState:
    """Half of every live capacity (``newton.interior_start``), per graph of the batch."""
    layers = torch.where(g.live, 0.5 * torch.clamp(g.caps, max=1.0), 0.0)
    source = torch.where(g.source, layers[:, 0].sum(dim=1), 0.0)
    sink = torch.where(g.sink, layers[:, -1].sum(dim=2), 0.0)
    return BatchState(layers=layers, source=source, sink=sink, value=source.sum(dim=1))


def imbalance(g: BatchGraph, x: BatchState) -> torch.Tensor:
    """(B,) largest violation of flow conservation (``newton.imbalance``)."""
    r, r_z = divergence(x.layers, torch.where(g.source, x.source, 0.0),
                        torch.where(g.sink, x.sink, 0.0), x.value)
    return torch.maximum(r.abs().flatten(1).amax(dim=1), r_z.abs())


# --------------------------------------------------------------------------- objective


def objective(g: BatchGraph, x: BatchState, mu: torch.Tensor) -> torch.Tensor:
    """(B,) barrier objective ``-F - mu * sum log f - mu * sum log(u - f)``; +inf outside."""
    live = g.live
    f = torch.where(live, x.layers, 0.5)
    u = torch.where(live, g.caps, 1.0)
    s = torch.where(g.source, x.source, 1.0)
    z = torch.where(g.sink, x.sink, 1.0)
    inside = (
        ((f > 0) & (f < u)).flatten(1).all(dim=1)
        & (s > 0).all(dim=1)
        & (z > 0).all(dim=1)
        & (x.value > 0)
    )
    sf = torch.where(inside[:, None, None, None], f, 0.5)
    su = torch.where(inside[:, None, None, None], u, 1.0)
    barrier = (
        torch.where(live, torch.log(sf) + torch.log(su - sf), 0.0).flatten(1).sum(dim=1)
        + torch.log(torch.where(inside[:, None], s, 1.0)).sum(dim=1)
        + torch.log(torch.where(inside[:, None], z, 1.0)).sum(dim=1)
        + torch.log(torch.where(inside, x.value, 1.0))
    )
    return torch.where(inside, -x.value - mu * barrier, math.inf)


# --------------------------------------------------------------------------- linear algebra


def _mv(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (a @ v.unsqueeze(-1)).squeeze(-1)


def _tri(chol: torch.Tensor, b: torch.Tensor, trans: bool = False) -> torch.Tensor:
    """``R^-1 b`` (or ``R^-T b``) for batched lower-triangular ``R``; ``b`` (B, t) or (B, t, k)."""
    vec = b.dim() == 2
    rhs = b.unsqueeze(-1) if vec else b
    if trans:
        out = torch.linalg.solve_triangular(chol.mT, rhs, upper=True)
    else:
        out = torch.linalg.solve_triangular(chol, rhs, upper=False)
    return out.squeeze(-1) if vec else out


@dataclass
class _Factor:
    d0: torch.Tensor
    inv0: torch.Tensor
    chols: list
    couplings: list
    u_vec: torch.Tensor
    s_z: torch.Tensor

    def solve(self, r: torch.Tensor, r_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched node potentials ``w`` (B, L+1, t) and ``w_z`` (B,)."""
        n_layers = len(self.chols) - 1
        vs: list = [None]
        y_next = r[:, 1] + _mv(self.d0, r[:, 0] * self.inv0)
        for k in range(1, n_layers + 1):
            v = _tri(self.chols[k], y_next)
            vs.append(v)
            if k < n_layers:
                y_next = r[:, k + 1] + _mv(self.couplings[k - 1].mT, v)
        w_z = (r_z + (self.u_vec * vs[n_layers]).sum(dim=1)) / self.s_z
        w = torch.zeros_like(r)
        rhs = vs[n_layers] + self.u_vec * w_z[:, None]
        for k in range(n_layers, 0, -1):
            if k < n_layers:
                rhs = vs[k] + _mv(self.couplings[k - 1], w[:, k + 1])
            w[:, k] = _tri(self.chols[k], rhs, trans=True)
        w[:, 0] = (r[:, 0] + _mv(self.d0.mT, w[:, 1])) * self.inv0
        return w, w_z


def factor(g: BatchGraph, d_l, d_s, d_z, d_f) -> _Factor:
    """Batched block Cholesky of ``B D B^T`` with Laplacian-form Schur complements."""
    n_b, n_layers, t, _ = d_l.shape
    nodes = g.nodes
    out_d = d_l.sum(dim=2)  # (B, L, t): conductance leaving node (k, j) forward
    gamma = d_s.clone()
    inv0 = 1.0 / torch.where(nodes[:, 0], gamma + out_d[:, 0], 1.0)
    chols: list = [None]
    couplings: list = []
    eye = torch.arange(t, device=d_l.device)
    for k in range(n_layers):
        dk = d_l[:, k]
        if k == 0:
            half = dk * torch.sqrt(inv0)[:, None, :]
            p = half @ half.mT
            gamma_next = _mv(dk, gamma * inv0)
        else:
            w_mat = _tri(chols[k], dk.mT)
            couplings.append(w_mat)
            p = w_mat.mT @ w_mat
            gamma_next = _mv(w_mat.mT, _tri(chols[k], gamma))
        live_next = nodes[:, k + 1]
        outgoing = out_d[:, k + 1] if k + 1 < n_layers else d_z
        p[:, eye, eye] = 0.0
        schur = -p
        schur[:, eye, eye] = torch.where(live_next, gamma_next + outgoing + p.sum(dim=2), 1.0)
        chol, info = torch.linalg.cholesky_ex(schur)
        if bool((info != 0).any()):
            raise SingularSystem(torch.nonzero(info).flatten().tolist(),
                                 "Newton system not positive definite (batched Cholesky)")
        chols.append(chol)
        gamma = torch.where(live_next, gamma_next, 0.0)
    last = chols[n_layers]
    u_vec = _tri(last, d_z)
    s_z = d_f + (u_vec * _tri(last, gamma)).sum(dim=1)
    return _Factor(d_l[:, 0], inv0, chols, couplings, u_vec, s_z)


def _take_factor(fac: _Factor, rows: list[int]) -> _Factor:
    """The factor of a subset of the batch's graphs (rows in the order given)."""
    if rows == list(range(fac.inv0.shape[0])):
        return fac
    idx = torch.tensor(rows, device=fac.inv0.device)
    return _Factor(fac.d0[idx], fac.inv0[idx], [None] + [c[idx] for c in fac.chols[1:]],
                   [c[idx] for c in fac.couplings], fac.u_vec[idx], fac.s_z[idx])


def divergence(a_l, a_s, a_z, a_f) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched node balance (outflow minus inflow); (B, L+1, t) and the super-sink's (B,)."""
    n_b, n_layers, t, _ = a_l.shape
    r = torch.zeros((n_b, n_layers + 1, t), dtype=a_l.dtype, device=a_l.device)
    r[:, :n_layers] += a_l.sum(dim=2)
    r[:, 1:] -= a_l.sum(dim=3)
    r[:, 0] -= a_s
    r[:, n_layers] += a_z
    return r, a_f - a_z.sum(dim=1)


# --------------------------------------------------------------------------- Newton step


def newton_step(
    g: BatchGraph, x: BatchState, mu: torch.Tensor, tangent: torch.Tensor,
    passes: list[int] | None = None, factored: _Factor | None = None,
) -> tuple[BatchState, torch.Tensor, _Factor]:
    """Batched Newton direction (or ``dx/dmu`` where ``tangent``), the decrement (B,) and the
    factor used. ``passes``: per graph, solves of the node system (``newton.newton_step``;
    default 3). ``factored``: a factor at the same ``x`` and ``mu`` (saves the factorisation)."""
    live = g.live
    m4 = mu[:, None, None, None]
    f = torch.where(live, x.layers, 0.5)
    u = torch.where(live, g.caps, 1.0)
    slack = u - f
    g_l = torch.where(live, m4 / slack - m4 / f, 0.0)
    d_l = torch.where(live, 1.0 / (m4 / f**2 + m4 / slack**2), 0.0)
    m2 = mu[:, None]
    s = torch.where(g.source, x.source, 1.0)
    g_s = torch.where(g.source, -m2 / s, 0.0)
    d_s = torch.where(g.source, s**2 / m2, 0.0)
    z = torch.where(g.sink, x.sink, 1.0)
    g_z = torch.where(g.sink, -m2 / z, 0.0)
    d_z = torch.where(g.sink, z**2 / m2, 0.0)
    g_f = -1.0 - mu / x.value
    d_f = x.value**2 / mu
    g_l = torch.where(tangent[:, None, None, None], g_l / m4, g_l)
    g_s = torch.where(tangent[:, None], g_s / m2, g_s)
    g_z = torch.where(tangent[:, None], g_z / m2, g_z)
    g_f = torch.where(tangent, -1.0 / x.value, g_f)
    keep = (~tangent).to(f.dtype)
    fac = factored if factored is not None else factor(g, d_l, d_s, d_z, d_f)
    q_l, q_s, q_z, q_f = g_l, g_s, g_z, g_f
    n_layers = d_l.shape[1]
    n_pass = torch.tensor(passes if passes is not None else [3] * len(mu), device=mu.device)
    for k in range(int(n_pass.max())):
        act = k < n_pass  # (B,) graphs that take this pass
        dw, dw_z = fac.solve(
            *divergence(
                torch.where(live, keep[:, None, None, None] * x.layers - d_l * q_l, 0.0),
                torch.where(g.source, keep[:, None] * x.source - d_s * q_s, 0.0),
                torch.where(g.sink, keep[:, None] * x.sink - d_z * q_z, 0.0),
                keep * x.value - d_f * q_f,
            )
        )
        dw = torch.where(act[:, None, None], dw, 0.0)
        dw_z = torch.where(act, dw_z, 0.0)
        q_l = q_l + torch.where(live, dw[:, :-1, None, :] - dw[:, 1:, :, None], 0.0)
        q_s = q_s + torch.where(g.source, -dw[:, 0], 0.0)
        q_z = q_z + torch.where(g.sink, dw[:, n_layers] - dw_z[:, None], 0.0)
        q_f = q_f + dw_z
    dec = (
        (d_l * q_l * q_l).flatten(1).sum(dim=1)
        + (d_s * q_s * q_s).sum(dim=1)
        + (d_z * q_z * q_z).sum(dim=1)
        + d_f * q_f**2
    )
    return BatchState(-d_l * q_l, -d_s * q_s, -d_z * q_z, -d_f * q_f), dec, fac


def _max_step(g: BatchGraph, x: BatchState, step: BatchState) -> torch.Tensor:
    """(B,) largest alpha keeping every live flow strictly inside (0, u)."""
    inf = torch.tensor(math.inf, dtype=x.value.dtype, device=x.value.device)

    def ratio(v, dv, mask):
        neg = mask & (dv < 0)
        r = torch.where(neg, v / torch.where(neg, -dv, 1.0), inf)
        return r.flatten(1).amin(dim=1)

    live = g.live
    alpha = torch.minimum(
        ratio(x.layers, step.layers, live), ratio(g.caps - x.layers, -step.layers, live)
    )
    alpha = torch.minimum(alpha, ratio(x.source, step.source, g.source))
    alpha = torch.minimum(alpha, ratio(x.sink, step.sink, g.sink))
    alpha = torch.minimum(alpha, torch.where(step.value < 0, x.value / -step.value, inf))
    return alpha


def line_search(
    g: BatchGraph, x: BatchState, step: BatchState, mu: torch.Tensor, max_step: torch.Tensor,
    iters: int = LINE_ITERS,
) -> torch.Tensor:
    """(B,) step lengths of ``newton.line_search``, per graph of the batch."""
    live = g.live
    f = torch.where(live, x.layers, 0.5)
    slack = torch.where(live, g.caps, 1.0) - f
    d = torch.where(live, step.layers, 0.0)
    ends = [(torch.where(g.source, x.source, 1.0), torch.where(g.source, step.source, 0.0)),
            (torch.where(g.sink, x.sink, 1.0), torch.where(g.sink, step.sink, 0.0)),
            (x.value[:, None], step.value[:, None])]
    bound = BOUNDARY * max_step
    a = torch.clamp(LINE_START * max_step, max=1.0)
    for _ in range(iters):
        p = d / (f + a[:, None, None, None] * d)
        q = d / (slack - a[:, None, None, None] * d)
        g1 = p.flatten(1).sum(dim=1) - q.flatten(1).sum(dim=1)
        g2 = (p * p).flatten(1).sum(dim=1) + (q * q).flatten(1).sum(dim=1)
        for v, dv in ends:
            r = dv / (v + a[:, None] * dv)
            g1 = g1 + r.sum(dim=1)
            g2 = g2 + (r * r).sum(dim=1)
        g1 = -step.value - mu * g1
        g2 = mu * g2
        ok = g2 > 0
        safe = torch.where(ok, g2, 1.0)
        dec = g1.abs() / torch.sqrt(mu * safe)
        move = torch.where(dec > 0.25, -g1 / safe / (1.0 + dec), -g1 / safe)
        new = a + move
        inside = (new > 0) & (new < bound)
        a = torch.where(ok, torch.where(inside, new, 0.5 * (a + torch.where(move > 0, bound, 0.0))),
                        a)
    return a


def _move(x: BatchState, step: BatchState, alpha: torch.Tensor) -> BatchState:
    return BatchState(
        x.layers + alpha[:, None, None, None] * step.layers,
        x.source + alpha[:, None] * step.source,
        x.sink + alpha[:, None] * step.sink,
        x.value + alpha * step.value,
    )


def _combine(x: BatchState, prev: BatchState, shrink: float) -> BatchState:
    c = 1.0 / (1.0 - shrink)
    return BatchState(
        c * (x.layers - shrink * prev.layers),
        c * (x.source - shrink * prev.source),
        c * (x.sink - shrink * prev.sink),
        c * (x.value - shrink * prev.value),
    )


def _take_graph(g: BatchGraph, idx: torch.Tensor) -> BatchGraph:
    if idx.numel() == g.caps.shape[0]:
        return g
    return BatchGraph(g.caps[idx], g.live[idx], g.source[idx], g.sink[idx], g.nodes[idx])


def _take(x: BatchState, idx: torch.Tensor) -> BatchState:
    if idx.numel() == x.value.shape[0]:
        return x
    return BatchState(x.layers[idx], x.source[idx], x.sink[idx], x.value[idx])


def _scatter(x: BatchState, idx: torch.Tensor, part: BatchState) -> BatchState:
    if idx.numel() == x.value.shape[0]:
        return part
    x.layers[idx] = part.layers
    x.source[idx] = part.source
    x.sink[idx] = part.sink
    x.value[idx] = part.value
    return x


def _zeros_like(x: BatchState) -> BatchState:
    return BatchState(torch.zeros_like(x.layers), torch.zeros_like(x.source),
                      torch.zeros_like(x.sink), torch.zeros_like(x.value))


class TorchKernels:
    """:class:`gaflow.solvers.path.Kernels` over torch: a batch is a :class:`BatchGraph` and
    :class:`BatchState` flows and steps (leading axis B); per-graph scalars cross to the host
    as float64 NumPy arrays."""

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float64):
        self.device, self.dtype = device, dtype

    def _t(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def _idx(self, rows: list[int]) -> torch.Tensor:
        return torch.tensor(rows, device=self.device, dtype=torch.long)

    @staticmethod
    def _host(a: torch.Tensor) -> np.ndarray:
        return a.detach().cpu().numpy()

    def take_graph(self, g, rows):
        return _take_graph(g, self._idx(rows))

    def interior_start(self, g):
        return interior_start(g)

    def feasible_start(self, g):
        return feasible_start(g)

    def imbalance(self, g, x):
        return self._host(imbalance(g, x))

    def values(self, x):
        return self._host(x.value)

    def sources(self, x):
        return list(self._host(x.source))

    def take(self, x, rows):
        return _take(x, self._idx(rows))

    def put(self, x, rows, part):
        return _scatter(x, self._idx(rows), part)

    def zeros_like(self, x):
        return _zeros_like(x)

    def newton_step(self, g, x, mu, tangent, passes, factored=None):
        tan = torch.as_tensor(np.asarray(tangent, dtype=bool), device=self.device)
        step, dec, fac = newton_step(g, x, self._t(mu), tan, list(passes), factored=factored)
        return step, self._host(dec), fac

    def take_factor(self, fac, rows):
        return _take_factor(fac, rows)

    def max_step(self, g, x, step):
        return self._host(_max_step(g, x, step))

    def line_search(self, g, x, step, mu, amax, which):
        return self._host(line_search(g, x, step, self._t(mu), self._t(amax)))

    def objective(self, g, x, mu, which, step=None, alpha=None):
        at = x if step is None else _move(x, step, self._t(alpha))
        return self._host(objective(g, at, self._t(mu)))

    def move(self, x, step, alpha):
        return _move(x, step, self._t(alpha))

    def scale(self, step, factor):
        f = self._t(factor)
        return BatchState(step.layers * f[:, None, None, None], step.source * f[:, None],
                          step.sink * f[:, None], step.value * f)

    def combine(self, x, prev, shrink):
        return _combine(x, prev, shrink)
