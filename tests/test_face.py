"""The optimal-face finish of the central flow (gaflow.solvers.face) against hand-derived values,
CVXPY, the path-following answer, and its failure paths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from gaflow import solve_flow
from gaflow.errors import ConvergenceWarning
from gaflow.flow.graph import build_graph
from gaflow.solvers import face, path, primal_dual
from gaflow.solvers.api import flow_units
from gaflow.solvers.newton import NumpyKernels
from gaflow.solvers.reference import augmenting_max_flow_value


def random_caps(rng, n_layers, t, density=0.7):
    caps = rng.random((n_layers, t, t))
    return caps * (rng.random((n_layers, t, t)) < density)


def central_point(caps, outputs, mu):
    """The graph in solver units and its central point at ``mu`` (path following, tight)."""
    graph = flow_units(build_graph(caps, outputs, None))
    kernels = NumpyKernels()
    res = path.solve(kernels, kernels.batch([graph]), 1, mu=mu)
    assert res.converged == [True]
    return graph, res.x[0]


def bottleneck_caps():
    """Two inputs into one node, then a bottleneck of capacity 1 to the one output.

    ``(0,0) -> (1,0)`` capacity 1, ``(0,1) -> (1,0)`` capacity 0.25, ``(1,0) -> (2,0)``
    capacity 1, outputs {0}. Max flow 1; the bottleneck is saturated in every maximum flow
    (fixed), the inputs share it: with ``x`` the flow of token 1, the face is ``0 < x < 0.25``
    and its analytic centre maximises (edge a: ``log(1-x) + log x``, its source edge
    ``log(1-x)``, edge b: ``log x + log(0.25-x)``, its source edge ``log x``; the sink edge and
    the bottleneck are constant) ``2 log(1-x) + 3 log x + log(0.25-x)``:
    ``-2/(1-x) + 3/x - 1/(0.25-x) = 0``.
    """
    caps = np.zeros((2, 2, 2))
    caps[0, 0, 0] = 1.0
    caps[0, 0, 1] = 0.25
    caps[1, 0, 0] = 1.0
    x = brentq(lambda v: -2 / (1 - v) + 3 / v - 1 / (0.25 - v), 1e-9, 0.25 - 1e-9, xtol=1e-15)
    return caps, [0], np.array([1.0 - x, x])


def test_hand_derived_face_centre():
    caps, outputs, phi = bottleneck_caps()
    graph, x = central_point(caps, outputs, 1e-7)
    _, x_prev = central_point(caps, outputs, 1e-6)
    fc = face.classify(graph, x, face.ROOM * 1e-7, x_prev)
    assert fc is not None
    assert fc.full[1, 0, 0] and not fc.free[1, 0, 0]  # the bottleneck: fixed at capacity
    assert fc.free[0, 0, 0] and fc.free[0, 0, 1]  # the inputs' edges vary over the face
    assert fc.source[:2].all()
    res = face.centre(graph, fc, x)
    assert res.ok, res.message
    np.testing.assert_allclose(res.x.source * graph.scale, phi, rtol=1e-9)
    sol = solve_flow(caps, outputs)
    np.testing.assert_allclose(sol.attributions, phi, rtol=1e-7)
    assert sol.converged


def test_hand_derived_cases_of_test_solver_through_the_face():
    """The hand-derived cases of test_solver.py, finished on the face where certified."""
    caps = np.zeros((2, 3, 3))
    caps[0, 0, 0] = caps[0, 1, 0] = caps[0, 1, 1] = 1.0
    caps[1, 0, 0] = 0.5
    caps[1, 0, 1] = caps[1, 2, 1] = 1.0
    sol = solve_flow(caps)
    np.testing.assert_allclose(sol.attributions, [1.5, 1.0, 0.0], atol=1e-7)
    assert sol.converged and sol.value == pytest.approx(2.5, rel=1e-8)


def face_centre_cvxpy(graph, fc):
    """The analytic centre of the face ``fc`` by CVXPY on an explicit edge list (its own
    incidence matrix): free layer edges ``log f + log(u - f)``, free source and sink edges
    ``log f``, fixed edges at their bounds, conservation at every token node."""
    import cvxpy as cp

    n_layers, t, _ = graph.caps.shape
    node = {(k, j): n for n, (k, j) in enumerate(np.ndindex(n_layers + 1, t))}
    edges = []  # (tail node or None for s, head node or None for z, kind, data)
    for k, i, j in zip(*np.nonzero(graph.live), strict=True):
        edges.append((node[(k, j)], node[(k + 1, i)], "layer", (k, i, j)))
    for j in np.flatnonzero(graph.source):
        edges.append((None, node[(0, j)], "source", j))
    for i in np.flatnonzero(graph.sink):
        edges.append((node[(n_layers, i)], None, "sink", i))
    inc = np.zeros((len(node), len(edges)))
    for e, (a, b, _, _) in enumerate(edges):
        if a is not None:
            inc[a, e] += 1.0
        if b is not None:
            inc[b, e] -= 1.0
    f = cp.Variable(len(edges))
    terms, cons = [], [inc @ f == 0]
    for e, (_, _, kind, d) in enumerate(edges):
        if kind == "layer":
            u = float(graph.caps[d])
            if fc.free[d]:
                terms += [cp.log(f[e]), cp.log(u - f[e])]
            else:
                cons.append(f[e] == (u if fc.full[d] else 0.0))
        else:
            free = fc.source[d] if kind == "source" else fc.sink[d]
            if free:
                terms.append(cp.log(f[e]))
            else:
                cons.append(f[e] == 0.0)
    cp.Problem(cp.Maximize(cp.sum(cp.hstack(terms))), cons).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500)
    phi = np.zeros(t)
    for e, (_, _, kind, d) in enumerate(edges):
        if kind == "source":
            phi[d] = f.value[e]
    return phi


@pytest.mark.parametrize("seed", range(8))
def test_face_centre_matches_cvxpy(seed):
    """On tiny random graphs the certified face's centre (our block Newton) agrees with CVXPY's
    analytic centre of the same face, and with the path-following central flow."""
    rng = np.random.default_rng(300 + seed)
    n_layers, t = int(rng.integers(1, 4)), int(rng.integers(2, 5))
    caps = random_caps(rng, n_layers, t, density=0.6)
    caps[:, :, 0] += 0.3  # some flow exists
    outputs = None if seed % 2 else [0]
    graph, x = central_point(caps, outputs, 1e-8)
    _, x_prev = central_point(caps, outputs, 1e-7)
    fc = face.classify(graph, x, face.ROOM * 1e-8, x_prev)
    assert fc is not None
    res = face.centre(graph, fc, x)
    assert res.ok, res.message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = face_centre_cvxpy(graph, fc)
    scale = np.abs(ref).max()
    assert np.abs(res.x.source - ref).max() <= 1e-6 * scale
    central = solve_flow(caps, outputs, strategy="path").attributions / graph.scale
    assert np.abs(res.x.source - central).max() <= 1e-6 * np.abs(central).max()


@pytest.mark.parametrize("strategy", ["finish", "primal_dual"])
@pytest.mark.parametrize("seed", range(10))
def test_face_agrees_with_the_path_on_random_graphs(seed, strategy):
    rng = np.random.default_rng(seed)
    n_layers, t = int(rng.integers(2, 7)), int(rng.integers(6, 25))
    logits = rng.normal(scale=2.0, size=(n_layers, t, t))
    caps = np.exp(logits) * (rng.random((n_layers, t, t)) < 0.8)
    outputs = None if seed % 3 else [0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fin = solve_flow(caps, outputs, strategy=strategy)
        ref = solve_flow(caps, outputs, strategy="path")
    assert fin.converged and ref.converged and not ref.face
    scale = np.abs(ref.attributions).max()
    assert np.abs(fin.attributions - ref.attributions).max() <= 1e-6 * scale
    assert fin.value == pytest.approx(augmenting_max_flow_value(caps, outputs), rel=1e-7)


@pytest.mark.parametrize("strategy", ["finish", "primal_dual"])
def test_face_is_used_and_saves_steps_on_attention_like_graphs(strategy):
    rng = np.random.default_rng(11)
    used, saved = 0, 0
    for _ in range(4):
        logits = rng.normal(scale=2.0, size=(6, 32, 32))
        caps = np.exp(logits - logits.max(axis=-1, keepdims=True))
        caps /= caps.sum(axis=-1, keepdims=True)
        fin, ref = solve_flow(caps, strategy=strategy), solve_flow(caps, strategy="path")
        used += fin.face
        saved += ref.iterations - fin.iterations
        assert np.abs(fin.attributions - ref.attributions).max() <= 1e-6 * ref.attributions.max()
    assert used >= 3 and saved > 0


@pytest.mark.parametrize("strategy", ["finish", "primal_dual"])
def test_face_on_graphs_of_trained_decoders(strategy):
    """The regression graphs of test_solver.py (capacities spanning 1e9 to 3e14): the face
    finish agrees with the path and with the exact maximum-flow value, without warnings."""
    from pathlib import Path

    data = np.load(Path(__file__).parent / "data" / "generation_graphs.npz")
    for n in range(int(data["n"])):
        caps = data[f"caps{n}"]
        tokens = data[f"tokens{n}"] if f"tokens{n}" in data else None
        outputs = data[f"outputs{n}"].tolist() if f"outputs{n}" in data else None
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            fin = solve_flow(caps, outputs, tokens=tokens, strategy=strategy)
            ref = solve_flow(caps, outputs, tokens=tokens, strategy="path")
        scale = np.abs(ref.attributions).max()
        assert np.abs(fin.attributions - ref.attributions).max() <= 1e-6 * scale, n
        real = np.ones(caps.shape[1], bool) if tokens is None else tokens
        exact = augmenting_max_flow_value(caps * real[None, :, None] * real[None, None, :],
                                          outputs)
        assert fin.value == pytest.approx(exact, rel=1e-6)


def test_failed_centring_falls_back_to_the_path(monkeypatch):
    """Every face try fails: the path goes on and ends as it does alone, converged, without a
    warning; the tries' steps count (and, for "primal_dual", its iterations)."""
    rng = np.random.default_rng(5)
    caps = random_caps(rng, 4, 12)
    ref = solve_flow(caps, strategy="path")
    spent = []

    def failing(graph, fc, x0, rtol=1e-6, max_steps=face.MAX_STEPS):
        spent.append(3)
        return face.Centred(x0, 3, False, "made to fail", np.inf)

    monkeypatch.setattr(face, "centre", failing)
    for strategy in ("finish", "primal_dual"):
        spent.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            sol = solve_flow(caps, strategy=strategy)
        assert sol.converged and not sol.face
        extra = sol.iterations - ref.iterations - sum(spent)
        if strategy == "finish":
            assert spent and extra == 0
        else:
            assert 0 < extra <= primal_dual.MAX_ITER
        np.testing.assert_allclose(sol.attributions, ref.attributions, rtol=0, atol=1e-12)


def test_unknown_strategy():
    from gaflow import InputError

    with pytest.raises(InputError, match="unknown strategy"):
        solve_flow(np.ones((1, 2, 2)), strategy="fastest")


def test_primal_dual_out_of_iterations_falls_back(monkeypatch):
    """The primal-dual phase stopped before any face try: the path follows, and finishes on
    the face where certified; same flows as the path alone."""
    monkeypatch.setattr(primal_dual, "MAX_ITER", 2)
    rng = np.random.default_rng(12)
    caps = random_caps(rng, 4, 12)
    ref = solve_flow(caps, strategy="path")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_flow(caps, strategy="primal_dual")
    assert sol.converged
    assert np.abs(sol.attributions - ref.attributions).max() <= 1e-6 * ref.attributions.max()


def test_primal_dual_breakdown_falls_back(monkeypatch):
    """A factorisation failing inside the primal-dual phase is a fallback, not an exception."""
    real = primal_dual.factor
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise np.linalg.LinAlgError("made to fail")

    monkeypatch.setattr(primal_dual, "factor", failing)
    caps = random_caps(np.random.default_rng(13), 3, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_flow(caps, strategy="primal_dual")
    monkeypatch.setattr(primal_dual, "factor", real)
    assert calls and sol.converged
    ref = solve_flow(caps, strategy="path")
    assert np.abs(sol.attributions - ref.attributions).max() <= 1e-6 * ref.attributions.max()


def test_primal_dual_face_matches_the_path():
    """Straight from the primal-dual phase (no path): the certified centre equals the path's
    central flow to 1e-6, and takes fewer factorisations in total on these graphs."""
    ours, theirs = 0, 0
    for seed in range(6):
        rng = np.random.default_rng(40 + seed)
        n_layers, t = int(rng.integers(2, 7)), int(rng.integers(6, 25))
        caps = np.exp(rng.normal(scale=2.0, size=(n_layers, t, t)))
        caps *= rng.random((n_layers, t, t)) < 0.8
        graph = flow_units(build_graph(caps, None, None))
        res = primal_dual.solve(graph)
        assert res.x is not None, res.message
        ref = solve_flow(caps, strategy="path")
        got = res.x.source * graph.scale
        assert np.abs(got - ref.attributions).max() <= 1e-6 * ref.attributions.max()
        ours, theirs = ours + res.steps, theirs + ref.iterations
    assert ours < theirs
