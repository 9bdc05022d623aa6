"""Baselines: hand-computed values on small matrices, independent recomputation on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gaflow
from gaflow.methods import method_names
from gaflow.methods.attention import flow_values, rollout_matrix
from gaflow.methods.gae import gae_matrix

TEXT = "although this dog is not cute, it is very smart."
A1 = np.array([[0.6, 0.4], [0.2, 0.8]])
A2 = np.array([[0.5, 0.5], [0.5, 0.5]])


def test_rollout_by_hand():
    # Â1 = [[.8,.2],[.1,.9]], Â2 = [[.75,.25],[.25,.75]]; R = Â2 Â1
    r = rollout_matrix(np.stack([A1, A2]))
    np.testing.assert_allclose(r[0], [0.625, 0.375])
    np.testing.assert_allclose(rollout_matrix(A1[None])[0], [0.8, 0.2])


def test_attention_flow_by_hand():
    # j=0: min(.8,.75) + min(.1,.25) = .85 ; j=1: min(.2,.75) + min(.9,.25) = .45
    np.testing.assert_allclose(flow_values(np.stack([A1, A2])), [0.85, 0.45], atol=2e-6)
    # one layer: the flow from j is the single edge capacity Â[0, j]
    np.testing.assert_allclose(flow_values(A1[None]), [0.8, 0.2], atol=2e-6)


def test_gae_by_hand():
    a = np.array([[[0.6, 0.4], [0.2, 0.8]], [[1.0, 0.0], [0.5, 0.5]]])[None]  # (1, H=2, 2, 2)
    g = np.array([[[1.0, -1.0], [2.0, 0.5]], [[0.5, 3.0], [-1.0, 1.0]]])[None]
    # cam = mean_h (a*g)+ = mean([[.6,0],[.4,.4]], [[.5,0],[0,.5]]) = [[.55,0],[.2,.45]]
    r = gae_matrix(a, g)
    np.testing.assert_allclose(r, np.eye(2) + np.array([[0.55, 0.0], [0.2, 0.45]]))
    # two layers: R2 = R1 + cam2 R1
    r2 = gae_matrix(np.concatenate([a, a]), np.concatenate([g, g]))
    np.testing.assert_allclose(r2, r + np.array([[0.55, 0.0], [0.2, 0.45]]) @ r)


@pytest.mark.parametrize("method", method_names("baseline"))
def test_every_baseline_runs_on_every_architecture(tiny, method):
    _, model, tok = tiny
    exps = gaflow.explain(model, tok, [TEXT, "bad film"], method=method)
    for e in exps:
        assert np.isfinite(e.scores).all() and len(e.scores) == len(e.tokens)
        assert e.method == method and e.config["solver"] is None
    one = gaflow.explain(model, tok, "bad film", method=method)
    np.testing.assert_allclose(one.scores, exps[1].scores, rtol=1e-4, atol=1e-7)


def _outputs(model, tok, text):
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    att = torch.stack(out.attentions, 1)[0].double().numpy()  # (L, H, t, t)
    return enc, out, att


def test_attention_and_rollout_match_model_outputs(tiny_bert):
    model, tok = tiny_bert
    _, _, att = _outputs(model, tok, TEXT)
    mean = att.mean(axis=1)
    e = gaflow.explain(model, tok, TEXT, method="attention")
    np.testing.assert_allclose(e.scores, mean[-1, 0], rtol=1e-6)
    r = np.eye(mean.shape[-1])
    for layer in mean:  # explicit loop, independent of rollout_matrix
        r = (0.5 * layer + 0.5 * np.eye(len(layer))) @ r
    e = gaflow.explain(model, tok, TEXT, method="rollout")
    np.testing.assert_allclose(e.scores, r[0], rtol=1e-6)
    assert e.scores.sum() == pytest.approx(1.0)  # rows stay stochastic


def test_cat_and_attcat_against_hooks(tiny_bert):
    """Recompute CAT with forward pre-hooks on the encoder layers (a different code path from
    the hidden_states the method uses)."""
    model, tok = tiny_bert
    enc = tok(TEXT, return_tensors="pt")
    entering, handles = [], []

    def grab(_module, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        h.retain_grad()
        entering.append(h)

    for layer in model.bert.encoder.layer:
        handles.append(layer.register_forward_pre_hook(grab, with_kwargs=True))
    try:
        with torch.enable_grad():
            out = model(**enc, output_attentions=True)
            target = int(out.logits[0].argmax())
            out.logits[0, target].backward()
    finally:
        for h in handles:
            h.remove()
    cat = np.stack([(h.grad * h).sum(-1)[0].detach().double().numpy() for h in entering])
    alpha = np.stack([a[0].mean(dim=(0, 1)).detach().double().numpy() for a in out.attentions])
    e_cat = gaflow.explain(model, tok, TEXT, method="cat")
    e_att = gaflow.explain(model, tok, TEXT, method="attcat")
    np.testing.assert_allclose(e_cat.scores, cat.sum(0), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(e_att.scores, (alpha * cat).sum(0), rtol=1e-4, atol=1e-9)


def test_grad_input_equals_autograd_by_hand(tiny_bert):
    """captum's InputXGradient gives what one backward pass of the summed target logits gives."""
    from gaflow.methods.base import target_logits

    model, tok = tiny_bert
    texts = [TEXT, "bad film"]
    exps = gaflow.explain(model, tok, texts, method="grad_input")
    enc = tok(texts, return_tensors="pt", padding=True)
    rest = {k: v for k, v in enc.items() if k != "input_ids"}
    emb = model.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb, **rest).logits
    (grad,) = torch.autograd.grad(target_logits(logits, [e.target for e in exps]), emb)
    by_hand = (grad * emb).sum(-1).detach().double().numpy()
    for b, e in enumerate(exps):
        real = enc["attention_mask"][b].bool().numpy()
        np.testing.assert_allclose(e.scores, by_hand[b, real], rtol=1e-6, atol=1e-9)


def test_grad_input_is_directional_derivative(tiny_bert):
    model, tok = tiny_bert
    model = model.double()
    try:
        enc = tok(TEXT, return_tensors="pt")
        e = gaflow.explain(model, tok, TEXT, method="grad_input")
        emb = model.get_input_embeddings()(enc["input_ids"]).detach()
        rest = {k: v for k, v in enc.items() if k != "input_ids"}
        i, eps = 3, 1e-6

        def logit(x):
            with torch.no_grad():
                return float(model(inputs_embeds=x, **rest).logits[0, e.target])

        plus, minus = emb.clone(), emb.clone()
        plus[0, i] *= 1 + eps
        minus[0, i] *= 1 - eps
        fd = (logit(plus) - logit(minus)) / (2 * eps)
        assert e.scores[i] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    finally:
        model.float()


def test_integrated_gradients_completeness(tiny_bert):
    model, tok = tiny_bert
    model = model.double()
    try:
        e = gaflow.explain(model, tok, TEXT, method="integrated_gradients")
        enc = tok(TEXT, return_tensors="pt")
        ids = enc["input_ids"].clone()
        ids[0, 1:-1] = tok.pad_token_id  # the documented baseline: [PAD] for non-special tokens
        with torch.no_grad():
            y = float(model(**enc).logits[0, e.target])
            y0 = float(model(input_ids=ids, attention_mask=enc["attention_mask"]).logits[
                0, e.target])
        assert e.scores.sum() == pytest.approx(y - y0, rel=0.02, abs=1e-6)
        assert e.scores[0] == 0 and e.scores[-1] == 0  # specials equal their baseline
    finally:
        model.float()


def test_occlusion_by_recomputation(tiny_bert):
    model, tok = tiny_bert
    e = gaflow.explain(model, tok, TEXT, method="occlusion")
    ids = tok(TEXT)["input_ids"]
    with torch.no_grad():
        p = torch.softmax(model(input_ids=torch.tensor([ids])).logits.double(), -1)[0, e.target]
        cut = ids[:4] + ids[5:]
        q = torch.softmax(model(input_ids=torch.tensor([cut])).logits.double(), -1)[0, e.target]
    assert e.scores[4] == pytest.approx(float(p - q), abs=1e-6)
    assert e.scores[0] == 0 and e.scores[-1] == 0


def test_frozen_weights_still_explained_and_hooks_released(tiny_bert):
    """A merged LoRA model has every weight frozen; gradients w.r.t. activations must still flow,
    and no hook may stay on the model afterwards."""
    import copy

    model, tok = tiny_bert
    frozen = copy.deepcopy(model).requires_grad_(False)
    for method in method_names():
        e = gaflow.explain(frozen, tok, TEXT, method=method)
        ref = gaflow.explain(model, tok, TEXT, method=method)
        np.testing.assert_allclose(e.scores, ref.scores, rtol=1e-5, atol=1e-8)
    emb = frozen.get_input_embeddings()
    assert not emb._forward_hooks and not emb._forward_pre_hooks
    assert all(p.grad is None for p in frozen.parameters())


def test_flow_only_options_rejected_for_baselines(tiny_bert):
    model, tok = tiny_bert
    for kwargs in ({"mu": 0.1}, {"outputs": "first"}, {"keep_flows": True}):
        with pytest.raises(gaflow.InputError, match="not apply to the baseline 'rollout'"):
            gaflow.explain(model, tok, TEXT, method="rollout", **kwargs)
