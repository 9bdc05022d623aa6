"""The batched torch backend runs the NumPy iteration: same flows (to 1e-8), same step counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gaflow
from gaflow import InputError, solve_flow


def attention_like(rng, n_layers, t, scale=2.0):
    logits = rng.normal(scale=scale, size=(n_layers, t, t))
    w = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def batch_of_graphs(rng):
    """Different lengths, a sparse graph with a single output, a padded graph, an empty one."""
    caps = [attention_like(rng, 3, t) for t in (2, 5, 11)]
    sparse = rng.random((3, 7, 7)) * (rng.random((3, 7, 7)) < 0.5)
    sparse[1, :, 3] = 0  # token 3 of layer 1 sends nothing: its upstream edges are pruned
    caps.append(sparse)
    caps.append(np.zeros((3, 4, 4)))  # no s -> z path: the max flow is 0
    caps.append(attention_like(rng, 3, 6))
    outputs = [None, None, [0], [0, 2], None, None]
    tokens = [None, None, None, None, None, np.array([True] * 4 + [False] * 2)]
    return caps, outputs, tokens


@pytest.mark.parametrize("mu", [None, 1e-2, 1e-5])
def test_torch_batch_equals_numpy(rng, mu):
    caps, outputs, tokens = batch_of_graphs(rng)
    """The torch backend follows the path alone: step for step what NumPy does with
    ``strategy="path"``; NumPy's default (the path ended at a certified face) gives the same
    flows to the contract."""
    ref = solve_flow(caps, outputs, mu, tokens=tokens, keep_flows=True, strategy="path")
    got = solve_flow(caps, outputs, mu, tokens=tokens, keep_flows=True, backend="torch")
    fin = solve_flow(caps, outputs, mu, tokens=tokens, keep_flows=True)
    assert len(got) == len(ref) == len(caps)
    for a, b, c in zip(got, ref, fin, strict=True):
        scale = max(np.abs(b.attributions).max(), 1e-300)
        assert np.abs(a.attributions - b.attributions).max() <= 1e-8 * scale
        assert abs(a.value - b.value) <= 1e-8 * max(b.value, 1e-300)
        assert np.abs(a.layer_flows - b.layer_flows).max() <= 1e-8 * scale
        assert a.iterations == b.iterations and a.converged == b.converged
        assert not a.face and not b.face
        assert np.abs(c.attributions - b.attributions).max() <= 1e-6 * scale
        assert c.converged
    assert got[4].value == 0.0 and not got[4].attributions.any()
    assert got[5].attributions[4:].tolist() == [0.0, 0.0]


def test_batch_item_equals_single_solve(rng):
    """A graph solved inside a batch gets exactly what it gets alone (lock step, no leaks)."""
    caps = [attention_like(rng, 4, t) for t in (3, 9, 6)]
    batch = solve_flow(caps, backend="torch")
    for c, sol in zip(caps, batch, strict=True):
        alone = solve_flow(c, backend="torch")
        np.testing.assert_allclose(sol.attributions, alone.attributions, rtol=0, atol=1e-12)


def test_tensors_accepted_and_efficiency(rng):
    caps = [torch.tensor(attention_like(rng, 2, t)) for t in (4, 8)]
    for sol in solve_flow(caps, backend="torch"):
        assert sol.converged
        assert sol.attributions.sum() == pytest.approx(sol.value, rel=1e-10)
        assert (sol.attributions > 0).all()


def test_backend_errors(rng):
    caps = attention_like(rng, 2, 3)
    with pytest.raises(InputError, match="unknown backend 'jax'"):
        solve_flow(caps, backend="jax")
    with pytest.raises(InputError, match="device applies to backend='torch' only"):
        solve_flow(caps, device="cpu")
    with pytest.raises(InputError, match="a list of 2 entries"):
        solve_flow([caps, caps], outputs=[[0]])
    with pytest.raises(InputError, match="empty batch"):
        solve_flow([])
    with pytest.raises(InputError, match="share the number of layers"):
        solve_flow([caps, attention_like(rng, 3, 3)], backend="torch")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            solve_flow(caps, backend="torch", device="cuda")


def test_explain_torch_backend_equals_numpy(tiny_bert):
    model, tok = tiny_bert
    texts = ["a gorgeous, witty, seductive movie.", "bad", "the film was dull and far too long"]
    ref = gaflow.explain(model, tok, texts, method="agf")
    got = gaflow.explain(model, tok, texts, method="agf", backend="torch", device="cpu")
    for a, b in zip(got, ref, strict=True):
        assert np.abs(a.scores - b.scores).max() <= 1e-8 * np.abs(b.scores).max()
        assert a.config["backend"] == "torch" and b.config["backend"] == "numpy"
    with pytest.raises(InputError, match="not apply to the baseline 'attention'"):
        gaflow.explain(model, tok, texts[0], method="attention", backend="torch")


def test_cli_backend_option(tiny_bert, tmp_path, capsys):
    from gaflow.cli import main

    model, tok = tiny_bert
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    args = ["explain", "the dog is smart", "--model", str(tmp_path / "m"), "--format", "json",
            "--method", "agf,attention"]
    assert main(args + ["--backend", "torch", "--device", "cpu"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert docs[0]["config"]["backend"] == "torch" and docs[1]["method"] == "attention"
    assert main(args) == 0
    ref = json.loads(capsys.readouterr().out)
    assert ref[0]["config"]["backend"] == "numpy"
    got, want = np.array(docs[0]["scores"]), np.array(ref[0]["scores"])
    assert np.abs(got - want).max() <= 1e-8 * np.abs(want).max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_equals_numpy(rng):
    caps, outputs, tokens = batch_of_graphs(rng)
    ref = solve_flow(caps, outputs, tokens=tokens)
    got = solve_flow(caps, outputs, tokens=tokens, backend="torch", device="cuda")
    for a, b in zip(got, ref, strict=True):
        assert np.abs(a.attributions - b.attributions).max() <= 1e-8 * max(
            np.abs(b.attributions).max(), 1e-300)
