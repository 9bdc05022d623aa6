"""Flow constructions (gaflow.flow.constructions, registered by gaflow.register_flow) through
explain(): residual edges, objective, routing; the shipped default against a manual pipeline."""

from __future__ import annotations

import numpy as np
import pytest

import gaflow
from gaflow import InputError
from gaflow.api import DEFAULT_METHOD
from gaflow.capture import capture
from gaflow.flow.graph import build_graph
from gaflow.flow.routing import proportional_flow
from gaflow.flow.seq2seq import with_residual, with_self_edges
from gaflow.methods import METHODS, get_method, register_flow

TEXT = "although this dog is not cute, it is very smart."
TEXTS = ["a gorgeous, witty, seductive movie.", TEXT, "bad", "the film was dull"]


@pytest.fixture
def registered():
    names = []

    def add(name, **kw):
        register_flow(name, "agf", **kw)
        names.append(name)
        return name

    yield add
    for n in names:
        METHODS.pop(n, None)


def test_default_is_a_registered_construction():
    spec = get_method(DEFAULT_METHOD).construction
    assert spec.routing == "proportional" and get_method(DEFAULT_METHOD).kind == "flow"
    assert gaflow.methods.method_names()[0] == DEFAULT_METHOD


def test_paper_methods_keep_the_paper_construction():
    for name in ("agf", "af", "gf"):
        spec = get_method(name).construction
        assert (spec.tensor, spec.residual, spec.objective, spec.routing) == (
            name, 0.0, "logit", "central")


@pytest.mark.parametrize("gradients", ["plain", "conservative"])
@pytest.mark.parametrize("routing", ["central", "proportional"])
@pytest.mark.parametrize("residual", [0.0, 0.5, "gradient"])
def test_efficient_and_finite(tiny, registered, routing, residual, gradients):
    _, model, tok = tiny
    name = registered(f"test_{routing}_{residual}_{gradients}", residual=residual,
                      routing=routing, objective="contrast", gradients=gradients)
    exp = gaflow.explain(model, tok, TEXT, method=name)
    assert np.isfinite(exp.scores).all() and (exp.scores >= -1e-12).all()
    assert exp.flow_value > 0
    assert exp.scores.sum() == pytest.approx(exp.flow_value, rel=1e-9)
    assert exp.config["construction"] == {"tensor": "agf", "weights": "attention",
                                          "residual": residual, "objective": "contrast",
                                          "routing": routing, "gradients": gradients}


def test_default_matches_manual_pipeline(tiny_bert):
    """The default method, rebuilt by hand from its construction's parts."""
    model, tok = tiny_bert
    spec = get_method(DEFAULT_METHOD).construction
    exp = gaflow.explain(model, tok, TEXT, keep_flows=True)
    x = dict(tok(TEXT, return_tensors="pt"))
    cons = spec.gradients == "conservative"
    cap = capture(model, x, [None], stream=spec.measured_residual, objective=spec.objective,
                  conservative=cons)
    a, g = cap.attentions[0], cap.gradients[0]
    if spec.weights == "norms":
        cap = capture(model, x, [None], stream=spec.measured_residual, objective=spec.objective,
                      values=True, conservative=cons)
        a = a * cap.value_norms[0][:, :, None, :]
    caps = gaflow.flow.tensors.information_tensor(spec.tensor, a, g)
    if spec.measured_residual:
        caps = with_self_edges(caps, np.maximum(cap.stream[0], 0.0) / a.shape[1])
    else:
        caps = with_residual(caps, spec.residual)
    if spec.routing == "proportional":
        phi, value, flows = proportional_flow(build_graph(caps))
    else:
        sol = gaflow.solve_flow(caps, keep_flows=True)
        phi, value, flows = sol.attributions, sol.value, sol.layer_flows
    np.testing.assert_allclose(exp.scores, phi, rtol=1e-10)
    assert exp.flow_value == pytest.approx(value, rel=1e-10)
    np.testing.assert_allclose(exp.flows, flows, rtol=1e-10, atol=1e-15)


def test_default_json_round_trip(tiny_bert):
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, TEXT)
    assert gaflow.Explanation.from_json(exp.to_json()) == exp


def test_proportional_rejects_solver_options(tiny_bert, registered):
    model, tok = tiny_bert
    name = registered("test_prop", routing="proportional")
    with pytest.raises(InputError, match="central maximum flow"):
        gaflow.explain(model, tok, TEXT, method=name, mu=0.1)
    with pytest.raises(InputError, match="central maximum flow"):
        gaflow.explain(model, tok, TEXT, method=name, backend="torch")


@pytest.mark.parametrize("kwargs, match", [
    (dict(residual=1.5), "residual"), (dict(residual="grad"), "residual"),
    (dict(residual=True), "residual"), (dict(routing="flow"), "routing"),
    (dict(objective="prob"), "objective"), (dict(weights="values"), "weights"),
    (dict(gradients="lrp"), "gradients"),
])
def test_register_flow_rejects_bad_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        register_flow("test_bad", "agf", **kwargs)
    assert "test_bad" not in METHODS


def test_register_flow_name_clashes(registered):
    with pytest.raises(InputError, match="exists"):
        register_flow("agf", "agf")
    with pytest.raises(InputError, match="exists"):
        register_flow("gae", "agf")
    with pytest.raises(InputError, match="information tensor"):
        register_flow("test_x", "nope")


def test_measured_residual_needs_post_norm_encoder(tokenizer):
    import transformers as tf

    cfg = tf.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=16, n_layer=2, n_head=2,
                        n_positions=64, num_labels=2, pad_token_id=0,
                        attn_implementation="eager")
    model = tf.GPT2ForSequenceClassification(cfg).eval()
    spec = get_method(DEFAULT_METHOD).construction
    if not spec.measured_residual:
        pytest.skip("the default does not measure the residual")
    with pytest.raises(gaflow.ModelError, match="post-norm encoder"):
        gaflow.explain(model, tokenizer, "a dull film")
    assert gaflow.explain(model, tokenizer, "a dull film", method="agf").flow_value >= 0


@pytest.mark.parametrize("routing", ["central", "proportional"])
def test_empty_flow_warns(tiny_bert, registered, routing):
    """No positive capacity into the output: every score is 0, and the user is told so."""
    model, tok = tiny_bert
    gaflow.flow.tensors.register_tensor("zero_test", lambda a, g: a.mean(axis=1) * 0.0)
    try:
        name = f"test_empty_{routing}"
        gaflow.register_flow(name, "zero_test", routing=routing)
        with pytest.warns(gaflow.EmptyFlowWarning, match="no flow reaches the output"):
            exps = gaflow.explain(model, tok, [TEXT, "bad"], method=name)
        assert all(e.flow_value == 0 and not e.scores.any() for e in exps)
    finally:
        gaflow.flow.tensors.INFORMATION_TENSORS.pop("zero_test")
        gaflow.methods.METHODS.pop(f"test_empty_{routing}", None)
