"""Proportional routing (gaflow.flow.routing): hand-computed graphs, then flow properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gaflow.flow.graph import build_graph
from gaflow.flow.routing import proportional_flow


def test_hand_computed_two_layers():
    # layer 0 -> 1: node 0 receives 1 from token 0 and 3 from token 1; node 1 receives 2 from 1
    # layer 1 -> 2: node 0 receives 1 from node 0 and 1 from node 1; node 1 nothing
    caps = np.array([[[1.0, 3.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, 0.0]]])
    phi, value, flows = proportional_flow(build_graph(caps))
    # unit demand at the only sink with in-capacity, (2, 0); split 1/2 : 1/2 over layer 1;
    # node (1, 0) passes 1/2 as 1/8 from token 0 and 3/8 from token 1, node (1, 1) 1/2 from 1
    unit = np.array([1 / 8, 3 / 8 + 1 / 2])
    # the tightest edge: (0, 0) -> (1, 0) carries 1/8 of capacity 1; (1,0)->(2,0) 1/2 of 1
    ratios = [1 / 8 / 1, 3 / 8 / 3, 1 / 2 / 2, 1 / 2 / 1, 1 / 2 / 1]
    f_max = 1 / max(ratios)
    np.testing.assert_allclose(phi, unit * f_max, rtol=1e-14)
    assert value == pytest.approx(2.0)
    np.testing.assert_allclose(flows[1], [[1.0, 1.0], [0.0, 0.0]], rtol=1e-14)
    np.testing.assert_allclose(flows[0], [[0.25, 0.75], [0.0, 1.0]], rtol=1e-14)


def test_output_demand_follows_in_capacity():
    # one layer, two outputs: (1, 0) has in-capacity 1, (1, 1) has 3; a straight pass-through
    caps = np.array([[[1.0, 0.0], [0.0, 3.0]]])
    phi, value, _ = proportional_flow(build_graph(caps))
    np.testing.assert_allclose(phi, [1.0, 3.0])
    assert value == pytest.approx(4.0)
    phi, value, _ = proportional_flow(build_graph(caps, outputs=[1]))
    np.testing.assert_allclose(phi, [0.0, 3.0])


def test_nullity_token_without_path():
    caps = np.zeros((2, 3, 3))
    caps[0, :, :2] = 1.0  # token 2 sends nothing
    caps[1] = 1.0
    phi, value, _ = proportional_flow(build_graph(caps))
    assert phi[2] == 0.0
    assert phi.sum() == pytest.approx(value)


def test_empty_graph():
    phi, value, flows = proportional_flow(build_graph(np.zeros((2, 3, 3))))
    assert value == 0.0 and not phi.any() and not flows.any()


def test_symmetric_tokens_get_equal_shares():
    rng = np.random.default_rng(0)
    caps = rng.random((3, 4, 4))
    caps[:, :, 2] = caps[:, :, 1]  # tokens 1 and 2 send the same ...
    caps[:, [1, 2], :] = caps[:, [2, 1], :]  # ... and swap rows, then make rows 1, 2 equal
    caps[:, 2, :] = caps[:, 1, :]
    caps[:, 1, 1], caps[:, 2, 2] = caps[:, 1, 2], caps[:, 1, 2]
    caps[:, 1, 2] = caps[:, 2, 1] = caps[:, 1, 1]
    perm = [0, 2, 1, 3]
    assert np.allclose(caps[:, perm][:, :, perm], caps)  # swapping 1 and 2 leaves the graph
    phi, _, _ = proportional_flow(build_graph(caps))
    assert phi[1] == pytest.approx(phi[2], rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)).map(
        lambda s: (s[0], s[1], s[1])), elements=st.sampled_from([0.0, 1e-3, 0.2, 0.5, 1.0, 7.0])),
    st.booleans(),
)
def test_flow_properties(caps, first_only):
    g = build_graph(caps, [0] if first_only else None)
    phi, value, flows = proportional_flow(g)
    if g.empty:
        assert value == 0.0 and not phi.any()
        return
    assert (phi >= 0).all() and (flows >= 0).all()
    assert phi.sum() == pytest.approx(value, rel=1e-12)  # efficiency
    assert (flows <= caps * (1 + 1e-12)).all()  # every capacity respected ...
    tight = np.isclose(flows, caps, rtol=1e-9) & (caps > 0)
    assert tight.any()  # ... and the largest such routing: some edge is full
    # conservation at every intermediate layer, and the source edges carry phi
    np.testing.assert_allclose(flows[0].sum(axis=0), phi, rtol=1e-10, atol=1e-12)
    for layer in range(1, caps.shape[0]):
        np.testing.assert_allclose(flows[layer].sum(axis=0), flows[layer - 1].sum(axis=1),
                                   rtol=1e-10, atol=1e-12)
    assert np.where(~g.source, phi, 0.0).sum() == 0.0  # nullity


def test_scale_invariance():
    rng = np.random.default_rng(1)
    caps = rng.random((3, 5, 5))
    phi, value, _ = proportional_flow(build_graph(caps))
    phi2, value2, _ = proportional_flow(build_graph(caps * 1e-9))
    np.testing.assert_allclose(phi2, phi * 1e-9, rtol=1e-12)
    assert value2 == pytest.approx(value * 1e-9, rel=1e-12)
