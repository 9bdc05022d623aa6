"""The barrier Newton solver against hand-derived values and independent references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from gaflow import InputError, solve_flow
from gaflow.solvers.reference import (
    augmenting_max_flow_value,
    cvxpy_barrier,
    exact_max_flow_value,
)


@pytest.fixture(params=["numpy", "torch"])
def backend(request):
    """Every solver test runs on both backends, with the same assertions."""
    return request.param


def random_caps(rng, n_layers, t, density=0.7):
    caps = rng.random((n_layers, t, t))
    return caps * (rng.random((n_layers, t, t)) < density)


def test_hand_derived_two_layer_three_token(backend):
    """2 layers, 3 tokens; derived on paper.

    Layer 0 -> 1: token 0 sends 1.0 to token 0 and 1.0 to token 1; token 1 sends 1.0 to token 1;
    token 2 sends nothing. Layer 1 -> 2: node 0 -> 0 with capacity 0.5, node 1 -> 0 with 1.0 and
    node 1 -> 2 with 1.0. Outputs: all tokens.
    Max flow = 2.5: node (1,0) can pass 0.5, node (1,1) can pass 2.0; (1,1) receives at most
    1 (from token 0) + 1 (from token 1) = 2, (1,0) at most 1 (from token 0).
    Every maximum flow saturates (1,0)->(2,0) = 0.5 and both out-edges of (1,1): 2.0 in total.
    So (1,1) needs 2.0 in: both of its in-edges are saturated, f((0,0)->(1,1)) = 1 and
    f((0,1)->(1,1)) = 1, and f((0,0)->(1,0)) = 0.5. Hence phi = (1.5, 1.0, 0) uniquely:
    token 2 has no out-edge (nullity), and F = 2.5.
    """
    caps = np.zeros((2, 3, 3))
    caps[0, 0, 0] = caps[0, 1, 0] = caps[0, 1, 1] = 1.0
    caps[1, 0, 0] = 0.5
    caps[1, 0, 1] = caps[1, 2, 1] = 1.0
    sol = solve_flow(caps, backend=backend)
    np.testing.assert_allclose(sol.attributions, [1.5, 1.0, 0.0], atol=1e-7)
    assert sol.attributions[2] == 0.0
    assert sol.value == pytest.approx(2.5, rel=1e-8)
    assert sol.converged


def test_hand_derived_symmetric_split(backend):
    """One layer, two tokens into one output of capacity split 1:1 -> equal shares (symmetry).

    With outputs {0}: edges (0,0)->(1,0) and (0,1)->(1,0), both capacity 1; max flow 2 saturates
    both, so phi = (1, 1). Capacity 0.3 on the second edge gives phi = (1, 0.3).
    """
    caps = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    sol = solve_flow(caps, outputs=[0], backend=backend)
    np.testing.assert_allclose(sol.attributions, [1, 1], atol=1e-7)
    caps[0, 0, 1] = 0.3
    sol = solve_flow(caps, outputs=[0], backend=backend)
    np.testing.assert_allclose(sol.attributions, [1, 0.3], atol=1e-7)


@pytest.mark.parametrize("seed", range(24))
def test_matches_cvxpy_reference_explicit_mu(seed, backend):
    rng = np.random.default_rng(seed)
    n_layers, t = int(rng.integers(1, 4)), int(rng.integers(2, 5))
    caps = random_caps(rng, n_layers, t, density=0.5 if seed % 3 == 0 else 0.8)
    outputs = None if seed % 2 == 0 else [int(rng.integers(0, t))]
    if exact_max_flow_value(caps, outputs) == 0:
        caps[:, :, 0] += 0.5  # make sure some flow exists
    for mu in (1e-2, 1e-3):
        sol = solve_flow(caps, outputs, mu=mu, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, value = cvxpy_barrier(caps, outputs, mu)
        assert sol.converged
        err = np.abs(sol.attributions - ref).max() / np.abs(ref).max()
        assert err < 1e-6, (seed, mu, err)
        assert sol.value == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_central_flow_is_a_maximum_flow(seed, backend):
    rng = np.random.default_rng(100 + seed)
    n_layers, t = int(rng.integers(1, 5)), int(rng.integers(2, 9))
    caps = random_caps(rng, n_layers, t)
    outputs = None if seed % 2 else [0]
    sol = solve_flow(caps, outputs, backend=backend)
    exact = exact_max_flow_value(caps, outputs)
    assert sol.value == pytest.approx(exact, rel=1e-6, abs=1e-12)
    assert sol.attributions.sum() == pytest.approx(sol.value, rel=1e-12, abs=1e-14)


def test_max_flow_value_against_scipy_integer_maximum_flow(backend):
    rng = np.random.default_rng(7)
    n_layers, t = 3, 6
    caps = rng.integers(0, 20, size=(n_layers, t, t)).astype(float)
    big = int(caps.sum()) + 1
    n = 2 + (n_layers + 1) * t  # s = 0, z = 1, node (l, i) = 2 + l * t + i
    dense = np.zeros((n, n), dtype=np.int32)
    for j in range(t):
        dense[0, 2 + j] = big
        dense[2 + n_layers * t + j, 1] = big
    for layer in range(n_layers):
        for i in range(t):
            for j in range(t):
                dense[2 + layer * t + j, 2 + (layer + 1) * t + i] = int(caps[layer, i, j])
    exact = maximum_flow(csr_matrix(dense), 0, 1).flow_value
    assert solve_flow(caps, backend=backend).value == pytest.approx(exact, rel=1e-7)


def test_central_flow_stable_as_mu_shrinks(backend):
    rng = np.random.default_rng(3)
    caps = random_caps(rng, 3, 5)
    central = solve_flow(caps, backend=backend).attributions
    gaps = [np.abs(solve_flow(caps, mu=mu, backend=backend).attributions - central).max()
            for mu in (1e-3, 1e-5, 1e-7)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4 * np.abs(central).max()


def test_pruning_and_padding_tokens(backend):
    rng = np.random.default_rng(5)
    caps = random_caps(rng, 2, 4, density=1.0)
    caps[:, :, 3] = 0.0  # token 3 never sends: pruned everywhere
    sol = solve_flow(caps, backend=backend)
    assert sol.attributions[3] == 0.0
    # a padding token is not a node: same result as dropping it
    masked = solve_flow(caps, tokens=np.array([True, True, True, False]), backend=backend)
    dropped = solve_flow(caps[:, :3, :3], backend=backend)
    np.testing.assert_allclose(masked.attributions[:3], dropped.attributions, rtol=1e-6)
    assert masked.attributions[3] == 0.0


def test_no_path_gives_zero_flow(backend):
    caps = np.zeros((2, 3, 3))
    caps[0, 1, 0] = 1.0  # reaches layer 1 only
    sol = solve_flow(caps, backend=backend)
    assert sol.value == 0.0 and not sol.attributions.any()


def test_keep_flows_conserve(backend):
    rng = np.random.default_rng(11)
    caps = random_caps(rng, 3, 5)
    sol = solve_flow(caps, keep_flows=True, backend=backend)
    flows = sol.layer_flows
    assert flows.shape == caps.shape
    assert (flows <= caps + 1e-9).all() and (flows >= -1e-12).all()
    np.testing.assert_allclose(flows[0].sum(axis=0), sol.attributions, rtol=1e-9, atol=1e-12)
    for layer in range(1, 3):
        np.testing.assert_allclose(
            flows[layer].sum(axis=0), flows[layer - 1].sum(axis=1), rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize(
    "caps, match",
    [
        (np.ones((2, 3)), "shape"),
        (np.ones((2, 3, 4)), "shape"),
        (-np.ones((1, 2, 2)), ">= 0"),
        (np.full((1, 2, 2), np.nan), "NaN"),
        (np.zeros((0, 2, 2)), "at least one layer"),
    ],
)
def test_bad_capacities(caps, match):
    with pytest.raises(InputError, match=match):
        solve_flow(caps)


def test_bad_options():
    caps = np.ones((1, 2, 2))
    with pytest.raises(InputError, match="mu"):
        solve_flow(caps, mu=-1.0)
    with pytest.raises(InputError, match="out of range"):
        solve_flow(caps, outputs=[5])
    with pytest.raises(InputError, match="at least one"):
        solve_flow(caps, outputs=[])


# ----------------------------------------------------------------- properties (hypothesis)

caps_strategy = st.tuples(st.integers(1, 3), st.integers(2, 5), st.integers(0, 10_000))


@settings(max_examples=25, deadline=None)
@given(caps_strategy)
def test_efficiency_and_nonnegativity(spec):
    n_layers, t, seed = spec
    caps = random_caps(np.random.default_rng(seed), n_layers, t)
    sol = solve_flow(caps)
    assert np.isfinite(sol.attributions).all()
    assert sol.attributions.sum() == pytest.approx(sol.value, rel=1e-10, abs=1e-12)
    assert (sol.attributions > -1e-9 * max(1.0, sol.value)).all()


@settings(max_examples=20, deadline=None)
@given(caps_strategy)
def test_permutation_equivariance(spec):
    """Relabelling tokens (the same permutation in every layer) permutes the attributions."""
    n_layers, t, seed = spec
    rng = np.random.default_rng(seed)
    caps = random_caps(rng, n_layers, t)
    perm = rng.permutation(t)
    permuted = caps[:, perm][:, :, perm]
    a = solve_flow(caps).attributions
    b = solve_flow(permuted).attributions
    np.testing.assert_allclose(b, a[perm], atol=1e-6 * max(1.0, np.abs(a).max()))


@settings(max_examples=20, deadline=None)
@given(caps_strategy)
def test_symmetry_duplicate_tokens(spec):
    """Two interchangeable input tokens (identical sending columns) get equal scores."""
    n_layers, t, seed = spec
    rng = np.random.default_rng(seed)
    caps = random_caps(rng, n_layers, t + 1)
    caps[0, :, t] = caps[0, :, t - 1]  # token t is a copy of token t-1 in what it sends
    a = solve_flow(caps).attributions
    assert a[t] == pytest.approx(a[t - 1], rel=1e-6, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(caps_strategy)
def test_scale_equivariance(spec):
    n_layers, t, seed = spec
    caps = random_caps(np.random.default_rng(seed), n_layers, t)
    a = solve_flow(caps).attributions
    b = solve_flow(caps * 37.0).attributions
    np.testing.assert_allclose(b, 37.0 * a, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("near", [False, True])
def test_line_search_minimises_along_the_newton_direction(seed, near):
    """The damped phase's step length: 1-D Newton on phi_mu(x + a dx) against a bounded scalar
    minimiser of the objective itself; with the default two iterations it already beats the
    first trial step, min(1, 0.9 max_step), of the old Armijo search. Far from the centre
    (mu = 1e-3 from the start) the minimum lies near the boundary; nearer (centred at mu = 1,
    then mu = 0.1) it lies inside, below the full step."""
    from scipy.optimize import minimize_scalar

    from gaflow.flow.graph import build_graph
    from gaflow.solvers import newton as nw
    from gaflow.solvers import path

    rng = np.random.default_rng(seed)
    graph = build_graph(rng.random((3, 6, 6)) ** 3, None, None)
    masks = nw._Masks.of(graph)
    kernels = nw.NumpyKernels()
    mu = 1e-3
    if near:
        res = path.solve(kernels, kernels.batch([graph]), 1, mu=1.0)  # centred tightly at mu=1
        assert res.converged == [True]
        x = res.x[0]
        mu = 0.1
    else:
        state = path.PathState(mu=np.ones(1), mu_next=np.zeros(1), total=np.zeros(1, int),
                               tight=np.ones(1, bool), status=[path.RUNNING])
        x = path._restore(kernels, kernels.batch([graph]), [nw.interior_start(graph)], state)[0]
        assert nw.imbalance(graph, x) <= path.RESTORED * max(1.0, x.value)
    step = nw.newton_step(graph, x, mu, masks=masks)
    assert step.decrement / mu > path.DAMPED
    amax = nw._max_step(graph, x, step)

    def phi(a):
        return nw.objective(graph, nw._move(x, step, a), mu, masks)

    exact = minimize_scalar(phi, bounds=(0.0, path.BOUNDARY * amax), method="bounded",
                            options={"xatol": 1e-12}).x
    assert (exact < 0.9 * amax) == near
    converged = nw.line_search(graph, x, step, mu, amax, masks, iters=60)
    assert converged == pytest.approx(exact, rel=1e-5)
    default = nw.line_search(graph, x, step, mu, amax, masks)
    assert 0 < default < path.BOUNDARY * amax
    assert phi(default) < phi(min(1.0, 0.9 * amax)) < phi(0.0)


def test_predictor_reuses_the_centring_factor():
    """The tangent at (x, mu) shares its Newton matrix with the step that ended the centring
    there: solving it with that step's factor gives the same direction, bit for bit."""
    from gaflow.flow.graph import build_graph
    from gaflow.solvers import newton as nw
    from gaflow.solvers import path

    graph = build_graph(np.random.default_rng(5).random((4, 7, 7)) ** 2, None, None)
    masks = nw._Masks.of(graph)
    kernels = nw.NumpyKernels()
    res = path.solve(kernels, kernels.batch([graph]), 1, mu=1e-2)
    assert res.converged == [True] and res.iterations[0] > 0
    x = res.x[0]
    centring = nw.newton_step(graph, x, 1e-2, masks=masks)
    assert centring.decrement / 1e-2 <= path.TIGHT
    fresh = nw.newton_step(graph, x, 1e-2, tangent=True, masks=masks)
    reused = nw.newton_step(graph, x, 1e-2, tangent=True, masks=masks,
                            factored=centring.factored)
    assert reused.factored is centring.factored and fresh.factored is not centring.factored
    np.testing.assert_array_equal(reused.layers, fresh.layers)
    np.testing.assert_array_equal(reused.source, fresh.source)
    assert np.abs(fresh.layers).max() > 0


@pytest.mark.parametrize("n_layers, t", [(1, 1), (3, 9), (5, 64), (2, 300)])
@pytest.mark.parametrize("block", [8, 8 * 9 * 2, 1 << 19])
def test_layer_blocks_tile_the_edge_arrays_once(n_layers, t, block, monkeypatch):
    from gaflow.solvers import blocks

    monkeypatch.setattr(blocks, "BLOCK_BYTES", block)
    seen = np.zeros((n_layers, t, t), dtype=int)
    for b in blocks.layer_blocks(n_layers, t):
        seen[b] += 1
        assert seen[b].nbytes <= max(block, 8 * t)  # at least one row per block
    assert (seen == 1).all()


@pytest.mark.parametrize("block", [8 * 9 * 2, 8 * 81 * 2])
@pytest.mark.parametrize("mu", [None, 1e-3])
def test_blocked_elementwise_work_gives_the_same_flows(block, mu, monkeypatch):
    """Long inputs are processed in row blocks of one layer (t * t * 8 bytes > BLOCK_BYTES),
    short ones in blocks of whole layers: force both on a small graph (2 rows per block; 2
    layers per block) and compare with one block. Only the rounding of sums may differ."""
    from gaflow.solvers import blocks

    caps = random_caps(np.random.default_rng(11), 5, 9) ** 2
    whole = solve_flow(caps, mu=mu, keep_flows=True)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", block)
    assert len(blocks.layer_blocks(5, 9)) > 1
    cut = solve_flow(caps, mu=mu, keep_flows=True)
    assert cut.iterations == whole.iterations and cut.converged
    scale = np.abs(whole.attributions).max()
    np.testing.assert_allclose(cut.attributions, whole.attributions, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(cut.layer_flows, whole.layer_flows, rtol=0, atol=1e-12 * scale)


def test_memory_layout_of_the_capacities_does_not_matter():
    """Slicing captured attentions gives transposed strides; the graph is C-ordered whatever
    the input's layout (the solver reads blocks of rows), and the flows are the same bit for bit."""
    from gaflow.flow.graph import build_graph

    caps = random_caps(np.random.default_rng(12), 4, 9) ** 2
    ref = solve_flow(caps, keep_flows=True)
    transposed = np.ascontiguousarray(caps.transpose(0, 2, 1)).transpose(0, 2, 1)
    for other in (np.asfortranarray(caps), transposed):
        assert not other.flags.c_contiguous
        graph = build_graph(other)
        assert graph.caps.flags.c_contiguous and graph.live.flags.c_contiguous
        sol = solve_flow(other, keep_flows=True)
        np.testing.assert_array_equal(sol.attributions, ref.attributions)
        np.testing.assert_array_equal(sol.layer_flows, ref.layer_flows)


# ----------------------------------------------------------------- dynamic range


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("layer_scale", [1e-30, 1e-16, 1e-13, 1e13, 1e20])
def test_one_layer_scaled_far_off(backend, layer_scale):
    """The issue's example: a layer scaled by 1e-16 came back 20% low with converged=True and
    one scaled by 1e13 raised a raw LinAlgError. Now the value is the exact maximum flow."""
    b = np.random.default_rng(0).random((3, 4, 4))
    c = b.copy()
    c[1] *= layer_scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = solve_flow(c, backend=backend)
    assert sol.converged
    assert sol.value == pytest.approx(augmenting_max_flow_value(c), rel=1e-6)
    assert sol.attributions.sum() == pytest.approx(sol.value, rel=1e-10)


def test_augmenting_reference_agrees_with_the_lp():
    rng = np.random.default_rng(21)
    for k in range(10):
        caps = random_caps(rng, int(rng.integers(1, 4)), int(rng.integers(2, 6)), density=0.6)
        outputs = None if k % 2 else [0]
        exact = exact_max_flow_value(caps, outputs)
        assert augmenting_max_flow_value(caps, outputs) == pytest.approx(exact, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(0, 2**31),
       st.sampled_from(["numpy", "torch"]))
def test_layers_scaled_1e_minus20_to_1e20(n_layers, t, seed, backend):
    """Layers scaled by 10^U(-20, 20): the value agrees with the exact maximum flow (augmenting
    paths in float64; HiGHS's LP zeroes capacities below its tolerances) to 1e-6 relative, or
    the solution says it did not converge, with a ConvergenceWarning; never a raw exception."""
    from gaflow.errors import ConvergenceWarning

    rng = np.random.default_rng(seed)
    caps = random_caps(rng, n_layers, t)
    caps *= 10.0 ** rng.uniform(-20, 20, size=(n_layers, 1, 1))
    outputs = None if seed % 2 else [int(rng.integers(0, t))]
    exact = augmenting_max_flow_value(caps, outputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_flow(caps, outputs, backend=backend)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert warned == (not sol.converged)
    if sol.converged:
        assert abs(sol.value - exact) <= 1e-6 * exact
        assert np.isfinite(sol.attributions).all()


# ----------------------------------------------------------------- how a run ends


def test_breakdown_is_reported_not_raised(monkeypatch):
    """A Newton system that cannot be factored ends the run with status "breakdown",
    converged=False and a ConvergenceWarning (NumPy backend; dpotrf made to fail)."""
    from gaflow.errors import ConvergenceWarning
    from gaflow.solvers import newton as nw

    def singular(a):
        raise np.linalg.LinAlgError("Newton system not positive definite (dpotrf info=1)")

    monkeypatch.setattr(nw, "_cholesky", singular)
    caps = random_caps(np.random.default_rng(4), 3, 5)
    with pytest.warns(ConvergenceWarning, match="not positive definite"):
        sol = solve_flow(caps)
    assert not sol.converged and sol.status == "breakdown"
    assert "not positive definite" in sol.message


def test_breakdown_of_one_graph_leaves_the_batch_alone(monkeypatch):
    """Torch backend: the graph whose Cholesky fails drops out with status "breakdown"; the
    others of the batch get exactly what they get alone."""
    import torch

    from gaflow.errors import ConvergenceWarning

    rng = np.random.default_rng(8)
    caps = [random_caps(rng, 3, t) for t in (4, 6, 5)]
    alone = [solve_flow(c, backend="torch") for c in caps]
    real = torch.linalg.cholesky_ex

    def fail_second(a):  # graph 1 of the full batch; rounds without it are left alone
        chol, info = real(a)
        if a.shape[0] == 3:
            info = info.clone()
            info[1] = 1
        return chol, info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", fail_second)
    with pytest.warns(ConvergenceWarning, match=r"graph 1\).*not positive definite"):
        got = solve_flow(caps, backend="torch")
    assert [s.status for s in got] == ["converged", "breakdown", "converged"]
    for k in (0, 2):
        np.testing.assert_allclose(got[k].attributions, alone[k].attributions, rtol=0,
                                   atol=1e-12 * np.abs(alone[k].attributions).max())
        assert got[k].iterations == alone[k].iterations


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_step_budget_is_reported(kind):
    """Out of Newton steps: status "max_iter", converged False, one warning per graph."""
    from gaflow.errors import ConvergenceWarning
    from gaflow.flow.graph import build_graph
    from gaflow.solvers import path

    graph = build_graph(random_caps(np.random.default_rng(2), 3, 6))
    if kind == "numpy":
        from gaflow.solvers.newton import NumpyKernels

        kernels = NumpyKernels()
        g = kernels.batch([graph])
    else:
        import torch

        from gaflow.solvers.torch_newton import TorchKernels, stack_graphs

        kernels = TorchKernels(torch.device("cpu"))
        g = stack_graphs([graph], "cpu", torch.float64)
    with pytest.warns(ConvergenceWarning, match="10 Newton steps spent"):
        res = path.solve(kernels, g, 1, max_iter=10)
    assert res.status == [path.MAX_ITER] and res.converged == [False]
    assert res.iterations == [10]


def _generation_graphs():
    from pathlib import Path

    data = np.load(Path(__file__).parent / "data" / "generation_graphs.npz")
    for n in range(int(data["n"])):
        tokens = data[f"tokens{n}"] if f"tokens{n}" in data else None
        outputs = data[f"outputs{n}"].tolist() if f"outputs{n}" in data else None
        yield data[f"caps{n}"], outputs, tokens


def test_graphs_of_trained_decoders_converge(backend):
    """Regression cases (tests/data/make_generation_graphs.py): the 24 graphs, of 384 from
    small decoders trained on copy, reverse, sort and rotate, whose capacities span the most
    orders of magnitude (1e9 to 3e14). Every solve converges without a warning and gives the
    exact maximum-flow value."""
    from gaflow.errors import ConvergenceWarning

    graphs = list(_generation_graphs())
    assert len(graphs) == 24
    for caps, outputs, tokens in graphs:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            sol = solve_flow(caps, outputs, tokens=tokens, backend=backend)
        assert sol.converged
        real = np.ones(caps.shape[1], bool) if tokens is None else tokens
        exact = augmenting_max_flow_value(caps * real[None, :, None] * real[None, None, :],
                                          outputs)
        assert sol.value == pytest.approx(exact, rel=1e-6)
        assert sol.attributions.sum() == pytest.approx(sol.value, rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(0, 2**31),
       st.sampled_from(["numpy", "torch"]))
def test_edges_scaled_1e_minus20_to_1e20(n_layers, t, seed, backend):
    """Every edge scaled by its own 10^U(-20, 20): the solution converges within its contract
    (max|dphi| <= rtol max|phi|, so |F - F*| <= t rtol F*) or says it did not converge."""
    from gaflow.errors import ConvergenceWarning

    rng = np.random.default_rng(seed)
    caps = random_caps(rng, n_layers, t)
    caps *= 10.0 ** rng.uniform(-20, 20, size=caps.shape)
    exact = augmenting_max_flow_value(caps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_flow(caps, backend=backend)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert warned == (not sol.converged)
    if sol.converged:
        assert abs(sol.value - exact) <= t * 1e-6 * exact
