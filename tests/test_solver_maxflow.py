"""The central flow from one exact maximum flow (strategy="face": gaflow.solvers.maxflow and
face.from_max_flow) against hand-derived faces, CVXPY, the path and exact max-flow values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_face import bottleneck_caps, face_centre_cvxpy, random_caps

from gaflow import solve_flow
from gaflow.errors import ConvergenceWarning
from gaflow.flow.graph import build_graph
from gaflow.solvers import face, maxflow
from gaflow.solvers.api import flow_bound, flow_units
from gaflow.solvers.reference import augmenting_max_flow_value


@pytest.fixture(autouse=True, params=maxflow.ENGINES)
def how(request, monkeypatch):
    """Every test of this module runs with each max-flow engine (GAFLOW_MAXFLOW)."""
    if request.param == "ortools" and not maxflow._has_ortools():
        pytest.skip("OR-tools is not installed (the gaflow[fast] extra)")
    monkeypatch.setenv(maxflow.ENV_VAR, request.param)
    return request.param


def solver_graph(caps, outputs=None):
    return flow_units(build_graph(caps, outputs, None))


def face_and_path(caps, outputs):
    """The face strategy's and the path's solutions, ConvergenceWarnings as errors; asserts that
    the face strategy certified its face and agrees with the path's central flow to 1e-6."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        got = solve_flow(caps, outputs, strategy="face")
        ref = solve_flow(caps, outputs, strategy="path")
    assert got.converged and got.face
    scale = np.abs(ref.attributions).max()
    assert np.abs(got.attributions - ref.attributions).max() <= 1e-6 * scale
    return got, ref


def attention(rng, n_layers, t):
    logits = rng.normal(scale=2.0, size=(n_layers, t, t))
    caps = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return caps / caps.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------- the maximum flow itself


@pytest.mark.parametrize("seed", range(12))
def test_max_flow_is_feasible_and_maximum(seed):
    """Both rounds: 0 <= f <= u, conservation to the rounding of one integer unit per edge,
    and the value of an exact augmenting-path max flow (to the first round's shortfall, then
    to 1e-12 relative after the refining round)."""
    rng = np.random.default_rng(seed)
    n_layers, t = int(rng.integers(1, 5)), int(rng.integers(2, 9))
    caps = random_caps(rng, n_layers, t, density=0.7)
    caps *= 10.0 ** rng.uniform(-6, 6, size=(n_layers, 1, 1))
    outputs = None if seed % 2 else [0]
    graph = solver_graph(caps, outputs)
    if graph.empty:
        return
    exact = augmenting_max_flow_value(graph.caps, outputs)
    first = maxflow.max_flow_arcs(graph, flow_bound(graph))
    second = maxflow.refine(graph, first)
    for arcs in (first, second):
        assert (arcs.layers >= 0).all() and (arcs.layers <= graph.caps).all()
        assert (arcs.layers[~graph.live] == 0).all()
        into = np.concatenate([arcs.source[None], arcs.layers.sum(axis=2)])  # (L+1, t)
        out = np.concatenate([arcs.layers.sum(axis=1), arcs.sink[None]])
        assert np.abs(into - out).max() <= 8 * t * arcs.resolution + 1e-15 * exact
    assert first.value <= exact * (1 + 1e-12) and exact - first.value <= first.shortfall + 1e-15
    assert second.rounds == 2 and second.value == pytest.approx(exact, rel=1e-12)


def test_arcs_above_the_32_bit_limit_are_split():
    """A source edge must carry more than 2^31 integer units (a node passing on 40 times the
    largest capacity): SciPy's int32 network splits it into parallel paths (OR-tools takes
    int64 capacities), and the value is exact."""
    caps = np.zeros((1, 40, 40))
    caps[0, :, 0] = 1.0  # token 0 feeds 40 tokens
    graph = solver_graph(caps)
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    assert arcs.value * graph.scale == pytest.approx(40.0, rel=1e-9)
    sol = solve_flow(caps, strategy="face")
    assert sol.face and sol.value == pytest.approx(40.0, rel=1e-9)


def test_engines_read_the_same_face():
    """Maximum flows are not unique, the optimal face is: SciPy's Dinic and OR-tools'
    push-relabel give the same classification wherever both certify one, and the same
    central flow through solve_flow."""
    if not maxflow._has_ortools():
        pytest.skip("OR-tools is not installed (the gaflow[fast] extra)")
    rng = np.random.default_rng(41)
    compared = 0
    for _ in range(12):
        n_layers, t = int(rng.integers(1, 5)), int(rng.integers(2, 12))
        caps = random_caps(rng, n_layers, t, density=0.6)
        graph = solver_graph(caps, None)
        faces = []
        for name in maxflow.ENGINES:
            arcs = maxflow.max_flow_arcs(graph, flow_bound(graph), name)
            fc = face._classify_arcs(graph, arcs)
            if fc is None:
                fc = face._classify_arcs(graph, maxflow.refine(graph, arcs, name))
            faces.append(fc)
        if None in faces:
            continue
        compared += 1
        a, b = faces
        assert (a.free == b.free).all() and (a.full == b.full).all()
        assert (a.source == b.source).all() and (a.sink == b.sink).all()
    assert compared >= 8
    caps = attention(np.random.default_rng(2), 4, 24)
    sols = []
    for name in maxflow.ENGINES:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(maxflow.ENV_VAR, name)
            sols.append(solve_flow(caps))
    assert all(s.face and s.converged for s in sols)
    np.testing.assert_allclose(sols[0].attributions, sols[1].attributions, rtol=1e-7)


def test_engine_choice_and_its_errors(monkeypatch):
    """auto takes OR-tools where it imports, else SciPy; an unknown engine, or OR-tools asked
    for without it, is an InputError from solve_flow (not a silent fallback to the path)."""
    from gaflow.errors import InputError

    assert maxflow.engine("scipy") == "scipy"
    monkeypatch.setattr(maxflow, "_has_ortools", lambda: False)
    assert maxflow.engine("auto") == "scipy"
    with pytest.raises(InputError, match="gaflow\\[fast\\]"):
        maxflow.engine("ortools")
    monkeypatch.setattr(maxflow, "_has_ortools", lambda: True)
    assert maxflow.engine("auto") == "ortools"
    monkeypatch.setenv(maxflow.ENV_VAR, "dinic")
    for strategy in ("face", "path"):  # refused whatever the strategy, empty graphs included
        with pytest.raises(InputError, match="unknown max-flow engine 'dinic'"):
            solve_flow(np.ones((2, 3, 3)), strategy=strategy)
    with pytest.raises(InputError, match="unknown max-flow engine 'dinic'"):
        solve_flow(np.zeros((2, 3, 3)))


def test_a_broken_ortools_install_falls_back_to_scipy(monkeypatch):
    """An OR-tools that fails to import in any way (here an OSError, as a broken shared
    library raises) counts as not installed: auto takes SciPy and the solve goes on."""
    import importlib

    real = importlib.import_module

    def broken(name, *args):
        if name.startswith("ortools"):
            raise OSError("libortools.so: cannot open shared object file")
        return real(name, *args)

    maxflow._has_ortools.cache_clear()
    monkeypatch.setattr(importlib, "import_module", broken)
    monkeypatch.setenv(maxflow.ENV_VAR, "auto")
    try:
        assert maxflow.engine() == "scipy"
        sol = solve_flow(attention(np.random.default_rng(8), 3, 8))
        assert sol.converged and sol.face
    finally:
        maxflow._has_ortools.cache_clear()


def test_objective_keeps_its_digits_where_the_product_is_subnormal():
    """Free flows around 1e-162 of the largest capacity: f (u - f) is subnormal, so the
    objective takes the two logs, and agrees with them to rounding."""
    caps = np.zeros((2, 3, 3))
    caps[0, 0, 0] = caps[0, 0, 1] = 6e-162
    caps[0, 1, 1] = 1.0
    caps[1, 0, 0] = 6e-162
    caps[1, 0, 1] = 1.0
    graph = solver_graph(caps, [0])
    fc = face._classify_arcs(graph, maxflow.max_flow_arcs(graph, flow_bound(graph)))
    if fc is None:
        fc = face._classify_arcs(graph, maxflow.refine(
            graph, maxflow.max_flow_arcs(graph, flow_bound(graph))))
    assert fc is not None and fc.n_free
    x = face.snap(graph, fc, face.max_flow_start(graph, fc, maxflow.max_flow_arcs(
        graph, flow_bound(graph))))
    f, u = x.layers[fc.free], graph.caps[fc.free]
    assert (f * (u - f)).min() < np.finfo(float).tiny  # the case at hand
    s, z = x.source[fc.source], x.sink[fc.sink]
    expect = -(np.log(f).sum() + np.log(u - f).sum() + np.log(s).sum() + np.log(z).sum())
    assert face._objective(graph, fc, x) == pytest.approx(expect, rel=1e-14)


# ----------------------------------------------------------------- faces known by hand


def test_hand_derived_bottleneck_face():
    """test_face.bottleneck_caps: the bottleneck is fixed at capacity, both inputs free, and
    the centre is the root of the hand-derived optimality condition."""
    caps, outputs, phi = bottleneck_caps()
    graph = solver_graph(caps, outputs)
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    fc = face._classify_arcs(graph, arcs)
    assert fc is not None
    assert fc.full[1, 0, 0] and not fc.free[1, 0, 0]
    assert fc.free[0, 0, 0] and fc.free[0, 0, 1] and fc.source[:2].all()
    res = face.from_max_flow(graph, flow_bound(graph))
    assert res.x is not None, res.message
    np.testing.assert_allclose(res.x.source * graph.scale, phi, rtol=1e-9)
    sol = solve_flow(caps, outputs, strategy="face")
    assert sol.face and sol.converged
    np.testing.assert_allclose(sol.attributions, phi, rtol=1e-9)


def test_hand_derived_saturated_cut_and_a_pinned_free_edge():
    """Two routes into one output: ``(0,0) -> (1,0) -> (2,0)`` (capacities 1, 1) and
    ``(0,1) -> (1,1) -> (2,0)`` (capacities 1, 0.5; ``(1,1) -> (2,1)`` leads to no output and is
    pruned). Max flow 1.5 with both edges into (2,0) saturated: fixed at capacity. ``(0,1) ->
    (1,1)`` carries 0.5 < 1 in every maximum flow: both its residual arcs exist, so it is free
    (inside one SCC with ``s``) though conservation pins it, which only adds a constant to the
    centring objective. The same holds for ``(0,0) -> (1,0)``'s chain at its capacity: fixed.
    Attributions [1, 0.5]."""
    caps = np.zeros((2, 2, 2))
    caps[0, 0, 0] = caps[1, 0, 0] = 1.0
    caps[0, 1, 1] = 1.0
    caps[1, 0, 1] = 0.5
    caps[1, 1, 1] = 1.0
    graph = solver_graph(caps, [0])
    fc = face._classify_arcs(graph, maxflow.max_flow_arcs(graph, flow_bound(graph)))
    assert fc is not None
    assert fc.full[1, 0, 0] and fc.full[1, 0, 1] and fc.full[0, 0, 0]
    assert fc.free[0, 1, 1] and fc.n_free == 1 and fc.source[1]
    sol = solve_flow(caps, [0], strategy="face")
    assert sol.face and sol.converged
    np.testing.assert_allclose(sol.attributions, [1.0, 0.5], rtol=1e-12)


def test_a_start_on_a_free_edges_bound_is_refused_without_numpy_warnings():
    """A start whose free edge sits on a bound (as a path point whose flows underflowed) has
    an infinite barrier: centre refuses it with a message instead of dividing by zero."""
    caps, outputs, _ = bottleneck_caps()
    graph = solver_graph(caps, outputs)
    fc = face._classify_arcs(graph, maxflow.max_flow_arcs(graph, flow_bound(graph)))
    good = face.from_max_flow(graph, flow_bound(graph))
    assert fc is not None and good.x is not None
    for edge_flow in (0.0, float(graph.caps[0, 0, 0])):
        start = face.FlowState(layers=good.x.layers.copy(), source=good.x.source.copy(),
                               sink=good.x.sink.copy(), value=good.x.value)
        start.layers[0, 0, 0] = edge_flow
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            out = face.centre(graph, fc, start)
        assert not out.ok and "on a bound" in out.message


def test_an_edge_capped_at_the_flow_bound_keeps_its_forward_arc():
    """One token, capacities 2 then 1: the first edge carries the whole flow (1) and is capped
    at the bound 1 in the integer network, yet has room; it must stay free (forward arc), so
    the face is certified from the max flow, no path needed."""
    caps = np.array([[[2.0]], [[1.0]]])
    graph = solver_graph(caps)
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    assert arcs.fwd[0, 0, 0] and not arcs.fwd[1, 0, 0]
    sol = solve_flow(caps, strategy="face")
    assert sol.face and sol.converged and sol.iterations == 0
    assert sol.value == pytest.approx(1.0, rel=1e-12)


def test_the_second_round_keeps_arcs_whose_room_exceeds_its_cap():
    """A refining round pushes exactly its cap through an edge of capacity 1: the edge still
    has room, so it keeps its forward arc and the refined face is certified."""
    caps = np.zeros((2, 2, 2))
    caps[0, 0, 0] = caps[0, 1, 0] = caps[1, 0, 0] = 1.0
    caps[1, 0, 1] = 2.0**-40
    sol = solve_flow(caps, [0], strategy="face")
    path = solve_flow(caps, [0], strategy="path")
    assert sol.face and sol.converged and sol.iterations < path.iterations
    np.testing.assert_allclose(sol.attributions, path.attributions, rtol=1e-9, atol=1e-15)


def test_hand_derived_cases_of_test_solver():
    caps = np.zeros((2, 3, 3))
    caps[0, 0, 0] = caps[0, 1, 0] = caps[0, 1, 1] = 1.0
    caps[1, 0, 0] = 0.5
    caps[1, 0, 1] = caps[1, 2, 1] = 1.0
    sol = solve_flow(caps, strategy="face")
    np.testing.assert_allclose(sol.attributions, [1.5, 1.0, 0.0], atol=1e-9)
    assert sol.converged and sol.face and sol.value == pytest.approx(2.5, rel=1e-10)


# ----------------------------------------------------------------- against references


@pytest.mark.parametrize("seed", range(8))
def test_combinatorial_face_centre_matches_cvxpy(seed):
    """The face read off the max flow, centred by our block Newton, against CVXPY's analytic
    centre of the same face and the path's central flow (tiny random graphs of test_face)."""
    rng = np.random.default_rng(300 + seed)
    n_layers, t = int(rng.integers(1, 4)), int(rng.integers(2, 5))
    caps = random_caps(rng, n_layers, t, density=0.6)
    caps[:, :, 0] += 0.3
    outputs = None if seed % 2 else [0]
    graph = solver_graph(caps, outputs)
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    fc = face._classify_arcs(graph, arcs)
    if fc is None:
        fc = face._classify_arcs(graph, maxflow.refine(graph, arcs))
    assert fc is not None
    res = face.from_max_flow(graph, flow_bound(graph))
    assert res.x is not None, res.message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = face_centre_cvxpy(graph, fc)
    assert np.abs(res.x.source - ref).max() <= 1e-6 * np.abs(ref).max()
    central = solve_flow(caps, outputs, strategy="path").attributions / graph.scale
    assert np.abs(res.x.source - central).max() <= 1e-6 * np.abs(central).max()


@pytest.mark.parametrize("seed", range(10))
def test_face_strategy_agrees_with_the_path(seed):
    rng = np.random.default_rng(seed)
    n_layers, t = int(rng.integers(2, 7)), int(rng.integers(6, 25))
    caps = np.exp(rng.normal(scale=2.0, size=(n_layers, t, t)))
    caps *= rng.random((n_layers, t, t)) < 0.8
    outputs = None if seed % 3 else [0]
    got, _ = face_and_path(caps, outputs)
    assert got.value == pytest.approx(augmenting_max_flow_value(caps, outputs), rel=1e-9)


def test_face_strategy_saves_steps_on_attention_like_graphs():
    rng = np.random.default_rng(11)
    for _ in range(3):
        caps = attention(rng, 6, 32)
        got, ref = solve_flow(caps, strategy="face"), solve_flow(caps, strategy="path")
        assert got.face and got.iterations < ref.iterations
        assert np.abs(got.attributions - ref.attributions).max() <= 1e-6 * ref.attributions.max()


def test_refining_round_repairs_a_rounded_cut():
    """An edge of the minimum cut below the first round's resolution (1e-12 of the largest
    capacity) rounds to 0: the first round's face has an s -> z path, the refining round
    finds the missing flow, and the answer is the path's."""
    rng = np.random.default_rng(3)
    caps = rng.random((2, 4, 4)) + 0.5
    caps[1] = 0.0
    caps[1, 0, 0] = 1.0
    caps[1, 0, 1] = 1e-12  # into the only output, through token 1
    graph = solver_graph(caps, [0])
    first = maxflow.max_flow_arcs(graph, flow_bound(graph))
    assert face._classify_arcs(graph, first) is None
    res = face.from_max_flow(graph, flow_bound(graph))
    assert res.x is not None and res.rounds == 2, res.message
    ref = solve_flow(caps, [0], strategy="path")
    got = solve_flow(caps, [0], strategy="face")
    assert got.face
    assert np.abs(got.attributions - ref.attributions).max() <= 1e-6 * ref.attributions.max()
    assert got.value == pytest.approx(1.0 + 1e-12, rel=1e-14)


def test_graphs_of_trained_decoders():
    """The regression graphs of test_solver.py (capacities spanning 1e9 to 3e14)."""
    from test_solver import _generation_graphs

    for caps, outputs, tokens in _generation_graphs():
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            got = solve_flow(caps, outputs, tokens=tokens, strategy="face")
            ref = solve_flow(caps, outputs, tokens=tokens, strategy="path")
        assert got.converged
        assert np.abs(got.attributions - ref.attributions).max() <= 1e-6 * np.abs(
            ref.attributions).max()


def test_scaled_start_centres_a_node_that_passes_on_a_sliver():
    """Node (1, 1) takes up to ~3 from its four free in-edges but passes on 1e-12: every flow
    of the face has its in-edges summing to 1e-12. The scaled start puts them there (rho =
    1e-12 / 3), so the centring is certified in a few steps, where the clipped start (a
    quarter of each capacity) needs one step per constant factor of the 1e12 to shrink."""
    rng = np.random.default_rng(3)
    caps = rng.random((2, 4, 4)) + 0.5
    caps[1] = 0.0
    caps[1, 0, 0] = 1.0
    caps[1, 0, 1] = 1e-12
    graph = solver_graph(caps, [0])
    arcs = maxflow.refine(graph, maxflow.max_flow_arcs(graph, flow_bound(graph)))
    fc = face._classify_arcs(graph, arcs)
    assert fc is not None
    scaled = face.centre(graph, fc, face.scaled_start(graph, fc, arcs), max_steps=50,
                         patience=face.PATIENCE)
    assert scaled.ok and scaled.steps <= 10, scaled
    np.testing.assert_allclose(scaled.x.layers[0, 1].sum(), 1e-12 / graph.scale, rtol=1e-9)
    ref = solve_flow(caps, [0], strategy="path")
    np.testing.assert_allclose(scaled.x.source * graph.scale, ref.attributions, rtol=1e-6,
                               atol=1e-6 * ref.attributions.max())


def test_a_failed_centring_on_the_last_face_is_retried_from_the_scaled_start(monkeypatch):
    """The first centring of the (exact, last) face fails: from_max_flow tries the scaled
    start before giving up, counts both tries' steps and returns the certified centre."""
    caps = attention(np.random.default_rng(4), 3, 10)
    graph = solver_graph(caps)
    calls = []
    real, real_scaled = face.centre, face.scaled_start

    def first_fails(g, fc, x0, **kw):
        calls.append(kw)
        if len(calls) == 1:
            return face.Centred(x0, 7, False, "made to fail", np.inf)
        return real(g, fc, x0, **kw)

    from dataclasses import replace

    exact = replace(maxflow.max_flow_arcs(graph, flow_bound(graph)), shortfall=0.0)
    scaled = []
    monkeypatch.setattr(face, "centre", first_fails)
    monkeypatch.setattr(maxflow, "max_flow_arcs", lambda g, b, how=None: exact)  # last face

    def recorded(*args):
        scaled.append(1)
        return real_scaled(*args)

    monkeypatch.setattr(face, "scaled_start", recorded)
    res = face.from_max_flow(graph, flow_bound(graph))
    assert res.x is not None and len(calls) == 2 and scaled == [1] and res.steps > 7
    ref = solve_flow(caps, strategy="path")
    np.testing.assert_allclose(res.x.source * graph.scale, ref.attributions, rtol=1e-6)


# ----------------------------------------------------------------- failure paths


def test_failed_centring_falls_back_to_the_path(monkeypatch):
    """Every centring fails (the max-flow start's and the path's face finish alike): the path
    takes over and ends as it does alone, converged, no warning; the failed tries count."""
    rng = np.random.default_rng(5)
    caps = random_caps(rng, 4, 12)
    ref = solve_flow(caps, strategy="path")
    spent = []

    def failing(graph, fc, x0, rtol=1e-6, max_steps=face.MAX_STEPS, patience=None):
        spent.append(4)
        return face.Centred(x0, 4, False, "made to fail", np.inf)

    monkeypatch.setattr(face, "centre", failing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_flow(caps, strategy="face")
    assert sol.converged and not sol.face
    assert sol.iterations == ref.iterations + sum(spent) and len(spent) >= 1
    np.testing.assert_allclose(sol.attributions, ref.attributions, rtol=0, atol=1e-12)


def test_max_flow_refused_falls_back(monkeypatch):
    def refusing(graph, bound, how=None):
        raise ValueError("made to fail")

    monkeypatch.setattr(maxflow, "max_flow_arcs", refusing)
    caps = random_caps(np.random.default_rng(6), 3, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_flow(caps, strategy="face")
    ref = solve_flow(caps, strategy="finish")
    assert sol.converged and sol.iterations == ref.iterations
    np.testing.assert_allclose(sol.attributions, ref.attributions, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(2, 6), st.integers(0, 2**31),
       st.sampled_from(["layers", "edges"]))
def test_scaled_1e_minus20_to_1e20(n_layers, t, seed, what):
    """Layers (or single edges) scaled by 10^U(-20, 20): the value agrees with the exact
    augmenting-path maximum flow to 1e-6 relative (t * 1e-6 for edges: the contract bounds
    max|dphi|), or the solution says it did not converge, with a ConvergenceWarning; never an
    exception."""
    rng = np.random.default_rng(seed)
    caps = random_caps(rng, n_layers, t)
    shape = (n_layers, 1, 1) if what == "layers" else caps.shape
    caps *= 10.0 ** rng.uniform(-20, 20, size=shape)
    outputs = None if seed % 2 else [int(rng.integers(0, t))]
    exact = augmenting_max_flow_value(caps, outputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_flow(caps, outputs, strategy="face")
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert warned == (not sol.converged)
    if sol.converged:
        tol = 1e-6 if what == "layers" else t * 1e-6
        assert abs(sol.value - exact) <= tol * exact
        assert np.isfinite(sol.attributions).all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = solve_flow(caps, outputs, strategy="path")
        if path.converged:  # the same central flow, attributions included
            scale = np.abs(path.attributions).max()
            assert np.abs(sol.attributions - path.attributions).max() <= 1e-5 * scale


@pytest.mark.parametrize("seed", range(20))
def test_layers_scaled_1e_minus20_to_1e20_keep_their_certified_face(seed):
    """The same layer scalings on fixed seeds: the face strategy itself certifies them (no
    fallback to the path) and agrees with the path's central flow."""
    rng = np.random.default_rng(seed)
    n_layers, t = int(rng.integers(1, 5)), int(rng.integers(2, 7))
    caps = random_caps(rng, n_layers, t)
    caps *= 10.0 ** rng.uniform(-20, 20, size=(n_layers, 1, 1))
    outputs = None if seed % 2 else [int(rng.integers(0, t))]
    face_and_path(caps, outputs)


# ----------------------------------------------------------------- reused factors


def _centring_case(seed=3, n_layers=4, t=24):
    """A certified face of an attention-like graph and the centring's first start."""
    graph = solver_graph(attention(np.random.default_rng(seed), n_layers, t))
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    fc = face._classify_arcs(graph, arcs)
    assert fc is not None
    return graph, fc, face.max_flow_start(graph, fc, arcs)


def test_a_step_preconditioned_by_its_own_factor_is_the_factored_step():
    """Conjugate gradients preconditioned by the exact factor of the same system converge in
    one product, so the node product is the factored matrix (diagonal, grounding, couplings):
    the step agrees with the factored one to rounding."""
    graph, fc, x0 = _centring_case()
    x = face.snap(graph, fc, x0)
    reuse = face.Reuse()
    fresh, dec = face.step(graph, fc, x, reuse=reuse)
    assert reuse.factored == 1 and reuse.fac is not None
    products = []
    real = face._node_product

    def counted(*args):
        products.append(1)
        return real(*args)

    reuse.allowed, reuse.w = True, None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(face, "_node_product", counted)
        again, dec2 = face.step(graph, fc, x, reuse=reuse)
    assert reuse.factored == 1  # no new factorisation
    assert 1 <= len(products) <= 2  # one product per solve; at most one refinement
    scale = np.abs(fresh.layers).max()
    assert np.abs(again.layers - fresh.layers).max() <= 1e-9 * scale
    assert dec2 == pytest.approx(dec, rel=1e-9)


def test_reusing_factors_near_the_centre_gives_the_same_certified_centre(monkeypatch):
    """With the last factor reused as a preconditioner after full steps near the centre, the
    centring certifies the same point (to 1e-12 of the largest flow) with fewer factorisations;
    with reuse switched off, every step factors (steps + 1 factorisations: the last step's
    system is factored to read its decrement)."""
    graph, fc, x0 = _centring_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = face.centre(graph, fc, x0, max_steps=face.COMBINATORIAL_STEPS,
                          patience=face.PATIENCE)
        monkeypatch.setattr(face, "REUSE_DEC", -1.0)
        ref = face.centre(graph, fc, x0, max_steps=face.COMBINATORIAL_STEPS,
                          patience=face.PATIENCE)
    assert got.ok and ref.ok
    assert ref.factored == ref.steps + 1
    assert got.factored < ref.factored
    assert np.abs(got.x.layers - ref.x.layers).max() <= 1e-12 * np.abs(ref.x.layers).max()
    assert np.abs(got.x.source - ref.x.source).max() <= 1e-12 * np.abs(ref.x.source).max()


def test_conjugate_gradients_that_do_not_converge_factor_anew(monkeypatch):
    """Where the preconditioned iteration does not reach the tolerance within its products
    (none allowed here), the step is made with a fresh factor: the same steps, bit for bit,
    as without reuse."""
    graph, fc, x0 = _centring_case()
    monkeypatch.setattr(face, "PCG_ITER", 0)
    got = face.centre(graph, fc, x0, max_steps=face.COMBINATORIAL_STEPS, patience=face.PATIENCE)
    monkeypatch.setattr(face, "REUSE_DEC", -1.0)
    ref = face.centre(graph, fc, x0, max_steps=face.COMBINATORIAL_STEPS, patience=face.PATIENCE)
    assert got.ok and got.steps == ref.steps and got.factored == ref.factored
    np.testing.assert_array_equal(got.x.layers, ref.x.layers)
    np.testing.assert_array_equal(got.x.source, ref.x.source)


@pytest.mark.parametrize("seed", range(40))
def test_a_first_round_face_is_read_with_one_scc_computation(seed):
    """certify(closed=True), used for the arcs of a first max-flow round, skips the second SCC
    computation: on random graphs (sparse, with capacities spread over 16 orders of magnitude
    and attention-like) it returns the same face, field by field, or the same refusal, as the
    general closure."""
    rng = np.random.default_rng(seed)
    n_layers, t = int(rng.integers(1, 5)), int(rng.integers(2, 9))
    if seed % 3 == 0:
        caps = attention(rng, n_layers, t)
    else:
        caps = random_caps(rng, n_layers, t, density=0.5)
        caps *= 10.0 ** rng.uniform(-8, 8, size=(n_layers, 1, 1) if seed % 3 == 1 else caps.shape)
    graph = solver_graph(caps, None if seed % 2 else [int(rng.integers(0, t))])
    if graph.empty:
        return
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    assert arcs.rounds == 1
    args = (graph, arcs.fwd, arcs.back, arcs.src_back, arcs.sink_back, graph.live & ~arcs.fwd)
    fast, slow = face.certify(*args, closed=True), face.certify(*args)
    assert (fast is None) == (slow is None)
    if fast is not None:
        for name in ("free", "full", "source", "sink", "nodes", "ground"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
        assert fast.n_free == slow.n_free


# ----------------------------------------------------------------- float32 damped steps


def _centre(graph, fc, x0):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return face.centre(graph, fc, x0, max_steps=face.COMBINATORIAL_STEPS,
                           patience=face.PATIENCE)


def test_a_float32_factor_solves_to_float32_accuracy():
    """factor(single=True) keeps its dense blocks in float32 and solves the same node system:
    against the float64 factor, the potentials agree to about float32's precision (times the
    blocks' conditioning), far from float64's."""
    from gaflow.solvers.newton import factor

    graph, fc, x0 = _centring_case()
    x = face.snap(graph, fc, x0)
    n_layers, t = graph.n_layers, graph.n_tokens
    _, d_l, out_d, in_d, _, d_s, _, d_z = face._terms(graph, fc, x,
                                                      face.layer_blocks(n_layers, t))
    g = face._with_nodes(graph, fc)
    ground = np.where(fc.ground, 1.0, 0.0)
    f64 = factor(g, d_l, d_s, d_z, np.inf, out_d, ground=ground)
    f32 = factor(g, d_l, d_s, d_z, np.inf, out_d, ground=ground, single=True)
    assert all(c.dtype == np.float32 for c in f32.chols[1:])
    assert all(c.dtype == np.float64 for c in f64.chols[1:])
    r = np.where(fc.nodes, np.random.default_rng(0).normal(size=(n_layers + 1, t)), 0.0)
    w64, w32 = f64.solve(r, 0.0)[0], f32.solve(r, 0.0)[0]
    assert w32.dtype == np.float64
    err = np.abs(w32 - w64).max() / np.abs(w64).max()
    assert 1e-12 < err < 1e-2


@pytest.mark.parametrize("seed", range(6))
def test_damped_steps_with_a_float32_factor_reach_the_float64_centre(seed, monkeypatch):
    """The damped steps of the infeasible phase factor in float32 (refined in float64 to
    LOOSE of the imbalance): the centring certifies the centre of the all-float64 centring
    (LOOSE = 0), to 1e-9 of the largest flow, with float32 factorisations made; the
    float64 run makes none."""
    rng = np.random.default_rng(100 + seed)
    caps = attention(rng, int(rng.integers(2, 6)), int(rng.integers(8, 40)))
    if seed % 2:
        caps *= 10.0 ** rng.uniform(-6, 6, size=(caps.shape[0], 1, 1))
    graph = solver_graph(caps)
    arcs = maxflow.max_flow_arcs(graph, flow_bound(graph))
    fc = face._classify_arcs(graph, arcs)
    assert fc is not None
    x0 = face.max_flow_start(graph, fc, arcs)
    got = _centre(graph, fc, x0)
    monkeypatch.setattr(face, "LOOSE", 0.0)
    ref = _centre(graph, fc, x0)
    assert got.ok and ref.ok
    assert got.single >= 1 and ref.single == 0
    assert np.abs(got.x.layers - ref.x.layers).max() <= 1e-9 * np.abs(ref.x.layers).max()
    assert np.abs(got.x.source - ref.x.source).max() <= 1e-9 * np.abs(ref.x.source).max()


def test_a_float32_step_that_does_not_refine_is_made_in_float64(monkeypatch):
    """A float32 factor whose refinement does not reach LOOSE (no pass allowed here) is
    replaced by a float64 one, and the centring makes no other float32 factor: the same steps,
    bit for bit, as the all-float64 centring, with the one float32 factorisation more."""
    graph, fc, x0 = _centring_case()
    monkeypatch.setattr(face, "LOOSE_PASSES", 0)
    got = _centre(graph, fc, x0)
    monkeypatch.setattr(face, "LOOSE", 0.0)
    ref = _centre(graph, fc, x0)
    assert got.ok and got.steps == ref.steps
    assert got.single == 1 and got.factored == ref.factored + 1
    np.testing.assert_array_equal(got.x.layers, ref.x.layers)
    np.testing.assert_array_equal(got.x.source, ref.x.source)


def test_a_float32_factor_that_breaks_down_is_made_in_float64(monkeypatch):
    """A float32 block that is not positive definite (simulated: every float32 Cholesky
    raises) leaves the step to a float64 factor: the same centring, bit for bit, as the
    all-float64 one."""
    from gaflow.solvers import newton

    real = newton._cholesky
    calls = []

    def breaks_in_float32(a):
        if a.dtype == np.float32:
            calls.append(1)
            raise np.linalg.LinAlgError("simulated float32 breakdown")
        return real(a)

    graph, fc, x0 = _centring_case()
    monkeypatch.setattr(newton, "_cholesky", breaks_in_float32)
    got = _centre(graph, fc, x0)
    monkeypatch.setattr(face, "LOOSE", 0.0)
    ref = _centre(graph, fc, x0)
    assert len(calls) == 1  # tried once; the centring's other factors are float64
    assert got.ok and got.steps == ref.steps and got.single == 0
    assert got.factored == ref.factored
    np.testing.assert_array_equal(got.x.layers, ref.x.layers)
    np.testing.assert_array_equal(got.x.source, ref.x.source)


def test_the_first_pass_fused_into_the_terms_is_sweeps_first_pass():
    """_terms with ``dx_l`` and ``first`` computes step's first refinement pass block by block
    (``w = None``: ``dx = -d g``, the node sums of ``x + dx``, ``sum d g^2``): bitwise what
    _sweep computes from the same terms, on a graph of several blocks."""
    graph, fc, x0 = _centring_case(seed=5, n_layers=6, t=160)
    x = face.snap(graph, fc, x0)
    blocks = face.layer_blocks(graph.n_layers, graph.n_tokens)
    assert len(blocks) > 1
    dx_fused, first = np.empty_like(x.layers), face._FirstPass()
    terms = face._terms(graph, fc, x, blocks, dx_fused, first)
    plain = face._terms(graph, fc, x, blocks)
    for a, b in zip(terms, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    g_l, d_l = plain[0], plain[1]
    dx = np.empty_like(x.layers)
    leave, enter, dec = face._sweep(x, d_l, g_l.copy(), dx, None, blocks)
    np.testing.assert_array_equal(dx_fused, dx)
    np.testing.assert_array_equal(first.leave, leave)
    np.testing.assert_array_equal(first.enter, enter)
    assert first.dec == dec and dec > 0
