"""The residual stream of post-norm encoders (gaflow.capture.stream) and linearised LayerNorms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaflow.capture import capture
from gaflow.capture.attention import objective_value
from gaflow.capture.linear_norm import linear_norms
from gaflow.capture.stream import attention_norms, layer_modules, norm_inputs
from gaflow.errors import InputError, ModelError

TEXTS = ["the dog is not cute , it is very smart .", "a dull film"]


def _inputs(tokenizer):
    return dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))


def test_forward_unchanged_with_scales_fixed(tiny):
    _, model, tok = tiny
    x = _inputs(tok)
    with torch.no_grad():
        ref = model(**x).logits
        with linear_norms(model):
            lin = model(**x).logits
    torch.testing.assert_close(lin, ref, rtol=1e-6, atol=1e-6)
    assert not any("forward" in vars(m) for m in model.modules())  # patches removed


def _output_bias(layer):
    """The bias of the attention block's output projection: the last Linear before the first
    LayerNorm of a post-norm layer."""
    last = None
    for m in layer.modules():
        if isinstance(m, torch.nn.LayerNorm):
            return last.bias
        if isinstance(m, torch.nn.Linear):
            last = m
    raise AssertionError("no LayerNorm")


def test_parts_sum_to_the_residual_sum(tiny):
    """With the scales fixed, g . x_l = sum_{h,j} A dA + g . h_l + g . b_O at every layer and
    token: the attention edges and the stream's self-edge split the residual sum exactly."""
    _, model, tok = tiny
    x = _inputs(tok)
    cap = capture(model, x, [None, None], stream=True)
    n_layers = cap.attentions.shape[1]
    norms = attention_norms(model, n_layers)
    with torch.enable_grad(), linear_norms(model), norm_inputs(norms) as sums:
        emb = model.get_input_embeddings()
        handle = emb.register_forward_hook(lambda m, a, o: o.detach().requires_grad_(True))
        try:
            out = model(**x, output_attentions=True)
        finally:
            handle.remove()
        y = objective_value(out.logits, [int(t) for t in cap.targets], "logit")
        grads = torch.autograd.grad(y, sums)
    layers = layer_modules(model, n_layers)
    mask = cap.mask
    for layer in range(n_layers):
        g = grads[layer].double().numpy()
        xs = sums[layer].detach().double().numpy()
        bias = _output_bias(layers[layer]).detach().double().numpy()
        attn_part = (cap.attentions[:, layer] * cap.gradients[:, layer]).sum(axis=(1, 3))
        total = attn_part + cap.stream[:, layer] + g @ bias
        expect = (g * xs).sum(-1)
        np.testing.assert_allclose(np.where(mask, total, 0), np.where(mask, expect, 0),
                                   rtol=1e-4, atol=1e-7)


def test_stream_capture_leaves_plain_capture_unchanged(tiny_bert):
    model, tok = tiny_bert
    x = _inputs(tok)
    plain = capture(model, x, [1, 0])
    again = capture(model, x, [1, 0])
    capture(model, x, [1, 0], stream=True)
    np.testing.assert_array_equal(plain.gradients, again.gradients)
    assert plain.stream is None
    after = capture(model, x, [1, 0])
    np.testing.assert_array_equal(plain.gradients, after.gradients)  # no patch or hook left


def test_contrast_objective_binary_is_log_odds(tiny_bert):
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5]], requires_grad=True)
    y = objective_value(logits, [0, 1], "contrast")
    assert y.item() == pytest.approx((0.3 + 1.2) + (0.5 - 2.0))
    (g,) = torch.autograd.grad(y, logits)
    torch.testing.assert_close(g, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))


def test_contrast_objective_weights_other_classes():
    logits = torch.tensor([[1.0, 0.0, float(np.log(3.0))]], requires_grad=True)
    (g,) = torch.autograd.grad(objective_value(logits, [0], "contrast"), logits)
    torch.testing.assert_close(g, torch.tensor([[1.0, -0.25, -0.75]]))


def test_unknown_objective(tiny_bert):
    model, tok = tiny_bert
    with pytest.raises(InputError, match="objective"):
        capture(model, _inputs(tok), [None, None], objective="prob")


def test_pre_norm_model_is_refused(tokenizer):
    import transformers as tf

    cfg = tf.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=16, n_layer=2, n_head=2,
                        n_positions=64, num_labels=2, pad_token_id=0,
                        attn_implementation="eager")
    model = tf.GPT2ForSequenceClassification(cfg).eval()
    with pytest.raises(ModelError, match="post-norm encoder"):
        capture(model, dict(tokenizer(["a dull film"], return_tensors="pt")), [None],
                stream=True)


def test_value_norms_by_hand(tiny):
    """|| v_{h,j} W_O^h || from the captured norms against the attention output itself: with the
    value vectors and W_O, sum_h A_h[i, j] v_{h,j} W_O^h summed over j (plus b_O) is the
    attention block's output, which the LayerNorm's input minus the stream gives."""
    from gaflow.capture.stream import value_projections

    _, model, tok = tiny
    x = _inputs(tok)
    cap = capture(model, x, [None, None], values=True)
    n_layers = cap.attentions.shape[1]
    pairs = value_projections(model, n_layers)
    vals = []
    hooks = [v.register_forward_hook(lambda m, a, o: vals.append(o.detach())) for v, _ in pairs]
    try:
        with torch.no_grad():
            out = model(**x, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    heads = cap.attentions.shape[2]
    for layer, (v, (_, proj)) in enumerate(zip(vals, pairs, strict=True)):
        b, t, d = v.shape
        w = proj.weight.detach()
        for h in range(heads):
            sl = slice(h * d // heads, (h + 1) * d // heads)
            f = v[..., sl] @ w[:, sl].T  # (B, t, d_out)
            np.testing.assert_allclose(cap.value_norms[:, layer, h], f.norm(dim=-1).double(),
                                       rtol=1e-5, atol=1e-6)
    assert out.logits.shape == (2, 2)
