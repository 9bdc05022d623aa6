"""explain() end to end on tiny random encoders (BERT, RoBERTa, DistilBERT, ELECTRA)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import gaflow
from gaflow import Explanation, InputError, ModelError, UnknownNameError
from gaflow.capture import capture
from gaflow.flow.tensors import INFORMATION_TENSORS, information_tensor

TEXT = "although this dog is not cute, it is very smart."
TEXTS = ["a gorgeous, witty, seductive movie.", TEXT, "bad", "the film was dull"]


@pytest.mark.parametrize("method", ["agf", "af", "gf"])
def test_scores_finite_and_efficient(tiny, method):
    _, model, tok = tiny
    exp = gaflow.explain(model, tok, TEXT, method=method)
    assert isinstance(exp, Explanation)
    assert len(exp.tokens) == len(exp.scores) == len(exp.special)
    assert np.isfinite(exp.scores).all() and (exp.scores >= -1e-12).all()
    assert exp.flow_value > 0
    assert exp.scores.sum() == pytest.approx(exp.flow_value, rel=1e-10)
    assert exp.special[0] and exp.special[-1] and not exp.special[1:-1].any()
    assert exp.config["solver"]["converged"]


def test_batch_equals_one_by_one_and_padding_invariant(tiny):
    """Padding must not leak into the flow. The model runs in float64 here so that float32
    rounding of different padded shapes (about 1e-7 relative in the attentions, measured up to
    2e-6 in the scores of DistilBERT) does not hide a real leak."""
    _, model, tok = tiny
    model = copy.deepcopy(model).double()
    batch = gaflow.explain(model, tok, TEXTS, batch_size=4)
    for text, exp in zip(TEXTS, batch, strict=True):
        alone = gaflow.explain(model, tok, text)
        assert alone.tokens == exp.tokens
        err = np.abs(alone.scores - exp.scores).max()
        assert err <= 1e-6 * np.abs(alone.scores).max(), (text, err)  # 0 <= 0: no flow at all


def test_json_round_trip_exact(tiny_bert):
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, TEXT, target="negative")
    back = Explanation.from_json(exp.to_json())
    assert back == exp
    assert np.array_equal(back.scores, exp.scores)
    assert json.loads(exp.to_json())["config"]["versions"]["torch"] == torch.__version__


def test_words_aggregate_subwords(tiny_bert):
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, "the dogs smartly")  # dog ##s, smart ##ly
    words = exp.words()
    assert [w for w, _ in words] == ["the", "dogs", "smartly"]
    assert words[1][1] == pytest.approx(exp.scores[2] + exp.scores[3])
    frame = exp.to_dataframe()
    assert list(frame["token"]) == exp.tokens and frame["score"].sum() == pytest.approx(
        exp.flow_value
    )


def test_agf_matches_manual_pipeline(tiny_bert):
    """explain == capture -> information tensor -> solve_flow done by hand, per definition."""
    model, tok = tiny_bert
    enc = tok(TEXT, return_tensors="pt")
    out = model(**enc, output_attentions=True)
    target = int(out.logits.argmax())
    grads = torch.autograd.grad(out.logits[0, target], out.attentions)
    a = torch.stack(out.attentions)[:, 0].detach().double()
    g = torch.stack(grads)[:, 0].double()
    caps = (a * g).clamp(min=0).mean(dim=1).numpy()  # Eq. agf: mean_h((A * dA)+)
    expected = gaflow.solve_flow(caps).attributions
    exp = gaflow.explain(model, tok, TEXT, method="agf")
    np.testing.assert_allclose(exp.scores, expected, rtol=1e-9, atol=1e-12)


def test_first_output_and_target(tiny_bert):
    model, tok = tiny_bert
    # af: attention reaches every last-layer token, so the output set matters. (For agf/gf on
    # BERT the last layer only has gradient in the [CLS] query row, so "all" == "first".)
    first = gaflow.explain(model, tok, TEXT, method="af", outputs="first")
    every = gaflow.explain(model, tok, TEXT, method="af", outputs="all")
    assert first.flow_value < every.flow_value
    agf_first = gaflow.explain(model, tok, TEXT, outputs="first")
    agf_all = gaflow.explain(model, tok, TEXT, outputs="all")
    np.testing.assert_allclose(agf_first.scores, agf_all.scores, rtol=1e-6)
    other = 1 - every.predicted
    flipped = gaflow.explain(model, tok, TEXT, target=other)
    assert flipped.target == other and flipped.target_label == ["negative", "positive"][other]
    assert flipped.probability == pytest.approx(1 - every.probability, abs=1e-6)


def test_sdpa_model_is_switched_to_eager(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    model = BertForSequenceClassification(cfg).eval()
    model.set_attn_implementation("sdpa")
    exp = gaflow.explain(model, tokenizer, TEXT)
    assert model.config._attn_implementation == "eager" and exp.flow_value > 0


def test_register_custom_tensor(tiny_bert):
    model, tok = tiny_bert
    name = "attn_squared_test"
    gaflow.register_tensor(name, lambda a, g: (a**2).mean(axis=1))
    try:
        exp = gaflow.explain(model, tok, TEXT, method=name)
        assert exp.method == name and exp.flow_value > 0
        assert name in gaflow.methods.method_names("flow")  # one registry: listed with the rest
        with pytest.raises(InputError, match="exists"):
            gaflow.register_tensor(name, lambda a, g: a.mean(axis=1))
    finally:
        INFORMATION_TENSORS.pop(name)
        gaflow.methods.METHODS.pop(name)


def test_information_tensor_definitions():
    rng = np.random.default_rng(0)
    a, g = rng.random((2, 3, 4, 4)), rng.normal(size=(2, 3, 4, 4))
    np.testing.assert_allclose(information_tensor("af", a, g), a.mean(axis=1))
    np.testing.assert_allclose(information_tensor("gf", a, g), np.maximum(g, 0).mean(axis=1))
    np.testing.assert_allclose(information_tensor("agf", a, g), np.maximum(a * g, 0).mean(axis=1))
    net = information_tensor("agf_net", a, g)  # heads netted before the positive part
    np.testing.assert_allclose(net, np.maximum((a * g).sum(axis=1), 0) / 3)
    assert (net <= information_tensor("agf", a, g) + 1e-15).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(text=""), InputError, "empty"),
        (dict(text="   "), InputError, "empty"),
        (dict(text=[]), InputError, "no text"),
        (dict(text=[TEXT, 3]), InputError, "not a string"),
        (dict(text=TEXT, method="nope"), UnknownNameError, "unknown method"),
        (dict(text=TEXT, target="neutral"), UnknownNameError, "unknown target"),
        (dict(text=TEXT, target=7), InputError, "out of range"),
        (dict(text=TEXT, outputs="last"), InputError, "outputs"),
        (dict(text=" ".join(["movie"] * 80)), InputError, "truncation=True"),
    ],
)
def test_bad_inputs(tiny_bert, kwargs, error, match):
    model, tok = tiny_bert
    with pytest.raises(error, match=match):
        gaflow.explain(model, tok, **kwargs)


def test_truncation_is_explicit_and_reported(tiny_bert):
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, " ".join(["movie"] * 80), truncation=True)
    assert exp.config["truncated"] and len(exp.tokens) == 64


def test_nan_attention_is_reported(tiny_bert):
    model, tok = tiny_bert
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.bert.encoder.layer[1].attention.self.query.weight[0, 0] = float("nan")
    with pytest.raises(ModelError, match="NaN"):
        capture(broken, dict(tok(TEXT, return_tensors="pt")), [None])


def test_load_model_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        gaflow.load_model(str(tmp_path / "missing"))


def test_load_model_local_directory_and_cli(tiny_bert, tmp_path, capsys):
    from gaflow.cli import main

    model, tok = tiny_bert
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, loaded_tok = gaflow.load_model(str(tmp_path / "m"))
    assert loaded.config._attn_implementation == "eager"
    assert main(["explain", TEXT, "--model", str(tmp_path / "m"), "--format", "json"]) == 0
    exp = Explanation.from_json(capsys.readouterr().out)
    ref = gaflow.explain(model, tok, TEXT)
    np.testing.assert_allclose(exp.scores, ref.scores, rtol=1e-9)
    assert main(["explain", TEXT, "--model", str(tmp_path / "m")]) == 0
    assert "smart" in capsys.readouterr().out
    out = tmp_path / "e.json"
    assert (
        main(["explain", TEXT, "--model", str(tmp_path / "m"), "--format", "json", "-o", str(out)])
        == 0
    )
    assert main(["explain", TEXT, "--model", str(tmp_path / "m"), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_model_without_attentions_is_a_clear_error(tiny_bert):
    """A model whose forward returns no attention weights fails loudly, never silently."""
    model, tok = tiny_bert

    class NoAttentions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model
            self.config = model.config

        def forward(self, **kwargs):
            out = self.inner(**kwargs)
            out.attentions = None
            return out

    with pytest.raises(ModelError, match="no attention weights"):
        gaflow.explain(NoAttentions(), tok, TEXT)


@pytest.mark.parametrize("real", [[0, 1, 2, 3, 4], [2, 3, 4], [0, 1], [0, 2, 3], [4]])
def test_real_token_block_is_the_fancy_index(real):
    """explain cuts each graph to its real tokens: a view for one run of positions (padding
    on either side), fancy indexing otherwise; both give the same numbers."""
    from gaflow.methods.flows import _real_block

    a = np.random.default_rng(0).random((2, 3, 5, 5))
    r = np.array(real)
    got = _real_block(a, r)
    np.testing.assert_array_equal(got, a[:, :, r][:, :, :, r])
    run = r[-1] - r[0] + 1 == r.size
    assert np.shares_memory(got, a) == run
