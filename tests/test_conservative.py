"""Conservative propagation (gaflow.capture.conservative): forward values unchanged, the rules
by hand, and exact conservation of gradient x activation across layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaflow.capture import capture
from gaflow.capture.conservative import (
    conservative,
    fixed_attention,
    linear_activations,
    ratio_forward,
)
from gaflow.errors import ModelError

TEXTS = ["the dog is not cute , it is very smart .", "a dull film"]


def _inputs(tokenizer):
    return dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))  # the second one padded


def _zero_biases(model):
    """A copy of ``model`` with every bias (LayerNorm shifts included) set to zero."""
    import copy

    model = copy.deepcopy(model)
    with torch.no_grad():
        for mod in model.modules():
            bias = getattr(mod, "bias", None)
            if isinstance(bias, torch.nn.Parameter):
                bias.zero_()
    return model


def test_forward_unchanged_and_patches_removed(tiny):
    _, model, tok = tiny
    x = _inputs(tok)
    with torch.no_grad():
        ref = model(**x, output_attentions=True)
        with conservative(model):
            cons = model(**x, output_attentions=True)
    torch.testing.assert_close(cons.logits, ref.logits, rtol=1e-6, atol=1e-6)
    for a, b in zip(cons.attentions, ref.attentions, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # padding masked as in eager
    assert model.config._attn_implementation == "eager"
    assert not any("forward" in vars(m) for m in model.modules())


def test_ratio_rule_by_hand():
    """GELU passes back f(z)/z: at z = 2, GELU(2)/2; at z = 0 the limit f'(0) = 1/2."""
    gelu = torch.nn.GELU()
    z = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64, requires_grad=True)
    y = ratio_forward(gelu.forward)(z)
    torch.testing.assert_close(y, gelu(z))  # forward value exactly f(z)
    (g,) = torch.autograd.grad(y.sum(), z)
    expect = torch.tensor([gelu(torch.tensor(2.0)).item() / 2.0,
                           gelu(torch.tensor(-1.0)).item() / -1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(g, expect, rtol=1e-6, atol=1e-7)
    plain = torch.autograd.grad(gelu(z).sum(), z)[0]
    assert abs(plain[0].item() - g[0].item()) > 0.05  # the rule changes the gradient


def test_activation_with_nonzero_value_at_zero_is_refused():
    class Shifted(torch.nn.Tanh):  # a torch activation module with f(0) = 1
        def forward(self, x):
            return torch.tanh(x) + 1.0

    # a well-behaved activation ahead of the bad one is not left patched by the refusal
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GELU(), Shifted())
    with pytest.raises(ModelError, match="f\\(0\\) != 0"), linear_activations(model):
        pass
    assert not any("forward" in vars(m) for m in model.modules())


def _attention_gradients(model, x, rules):
    from gaflow.capture import differentiable

    with torch.enable_grad(), differentiable(model), conservative(model, rules):
        out = model(**x, output_attentions=True)
        grads = torch.autograd.grad(out.logits[:, 1].sum(), out.attentions)
    return [g.detach() for g in grads]


def test_fixed_attention_keeps_dA_and_blocks_queries(tiny_bert):
    """With A fixed no gradient reaches the queries and keys; dy/dA of the last layer, which
    no later softmax affects, is the model's own, and that of the first layer is not."""
    import copy

    model, tok = tiny_bert
    model = copy.deepcopy(model)
    with torch.no_grad():  # peaked attention, so that the softmax's gradient matters
        for layer in model.bert.encoder.layer:
            layer.attention.self.query.weight.mul_(30.0)
            layer.attention.self.key.weight.mul_(30.0)
    x = _inputs(tok)
    plain = _attention_gradients(model, x, ("norms",))
    fixed = _attention_gradients(model, x, ("norms", "attention"))
    torch.testing.assert_close(fixed[-1], plain[-1], rtol=1e-5, atol=1e-9)
    assert (fixed[0] - plain[0]).abs().max() > 1e-3 * plain[0].abs().max()

    seen = []
    query = model.bert.encoder.layer[0].attention.self.query
    handle = query.register_forward_hook(lambda m, a, o: seen.append(o))
    try:
        with torch.enable_grad(), conservative(model):
            out = model(**x)
            g = torch.autograd.grad(out.logits[:, 1].sum(), seen[0], allow_unused=True)[0]
    finally:
        handle.remove()
    assert g is None or not g.any()


def test_layers_conserve_the_logit(tiny):
    """Biases at zero, the network under conservative propagation is linear in every layer's
    stream: the attention edges and the residual parts of every layer, and gradient x
    activation at the embeddings, all sum to the same number, which is the target logit
    where the head's activations are modules (not RoBERTa's functional tanh)."""
    arch, model, tok = tiny
    model = _zero_biases(model)
    x = _inputs(tok)
    cap = capture(model, x, [1, 0], stream=True, conservative=True)
    per_layer = (cap.attentions * cap.gradients).sum(axis=(2, 4)) + cap.stream  # (B, L, t)
    totals = np.where(cap.mask[:, None, :], per_layer, 0.0).sum(-1)
    embedded = np.where(cap.mask, cap.embedding_terms, 0.0).sum(-1)
    np.testing.assert_allclose(totals, np.repeat(embedded[:, None], totals.shape[1], 1),
                               rtol=2e-5)
    logit = cap.logits[[0, 1], [1, 0]]
    if arch != "roberta":
        np.testing.assert_allclose(embedded, logit, rtol=2e-5)
    plain = capture(model, x, [1, 0], stream=True)  # the model's own gradients do not conserve
    plain_totals = np.where(plain.mask[:, None, :], (plain.attentions * plain.gradients).sum(
        axis=(2, 4)) + plain.stream, 0.0).sum(-1)
    spread = np.ptp(plain_totals, axis=1) / np.abs(plain_totals).max(axis=1)
    assert spread.max() > 2e-4


def test_grouped_attention_is_refused(tokenizer):
    """Llama with fewer key/value heads than heads: A V would need the grouped values."""
    import transformers as tf

    cfg = tf.LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         num_labels=2, pad_token_id=0, attn_implementation="eager")
    model = tf.LlamaForSequenceClassification(cfg).eval()
    x = dict(tokenizer(["a dull film"], return_tensors="pt"))
    with pytest.raises(ModelError, match="grouped"), torch.no_grad(), fixed_attention(model):
        model(**x)
    assert model.config._attn_implementation == "eager"


def test_non_eager_model_is_refused(tiny_bert):
    model, _ = tiny_bert
    model.config._attn_implementation = "sdpa"
    try:
        with pytest.raises(ModelError, match="eager"), fixed_attention(model):
            pass
    finally:
        model.config._attn_implementation = "eager"


def test_lrp_baseline_is_the_embedding_split(tiny):
    """The ``lrp`` baseline is gradient x activation at the first layer's input under
    conservative propagation: the capture's embedding terms, and (biases at zero, heads with
    activation modules) it sums to the target logit."""
    import gaflow

    arch, model, tok = tiny
    model = _zero_biases(model)
    exps = gaflow.explain(model, tok, TEXTS, method="lrp", target=1)
    cap = capture(model, _inputs(tok), [1, 1], conservative=True)
    for b, exp in enumerate(exps):
        real = np.flatnonzero(cap.mask[b])
        np.testing.assert_allclose(exp.scores, cap.embedding_terms[b, real], rtol=1e-6,
                                   atol=1e-12)
        if arch != "roberta":
            assert exp.scores.sum() == pytest.approx(cap.logits[b, 1], rel=2e-5)
