"""The ways in: the method registry (one interface for flows and baselines, ``gaflow
methods``), a transformers pipeline in ``explain``, the captum-style ``GAF`` and small public
helpers (``versions``, dataset defaults)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gaflow
from gaflow import InputError
from gaflow.captum import GAF
from gaflow.methods import METHODS, Attributions, Method, Request, get_method, method_names

TEXTS = ["although this dog is not cute, it is very smart.", "bad film"]


def _batch(tok):
    return tok(TEXTS, return_tensors="pt", padding=True)


def test_registry_holds_flows_then_baselines():
    names = method_names()
    assert names[0] == gaflow.api.DEFAULT_METHOD
    flows, baselines = method_names("flow"), method_names("baseline")
    assert names == flows + baselines
    assert {"agf", "af", "gf"} <= set(flows) and {"gae", "occlusion"} <= set(baselines)
    assert [m.name for m in gaflow.list_methods()] == names
    assert all(isinstance(METHODS[n], Method) and METHODS[n].summary() for n in names)
    with pytest.raises(gaflow.UnknownNameError, match="unknown method 'nope'"):
        get_method("nope")


def test_a_user_method_object_is_explained_like_any_other(tiny_bert):
    """A Method subclass registered once works in explain (batch == one by one) and is
    listed; its option set is enforced."""

    class Length(Method):  # every real token gets 1 / its position + 1
        kind = "baseline"

        def attribute(self, request: Request) -> Attributions:
            n = request.mask.shape[0]
            scores = [1.0 / (1.0 + np.arange(request.mask[b].sum())) for b in range(n)]
            logits = np.zeros((n, 2))
            return Attributions(logits, np.full(n, 1), scores, [float(s.sum()) for s in scores])

    model, tok = tiny_bert
    gaflow.register_method(Length("test_length", "position decay"))
    try:
        assert "test_length" in method_names("baseline")
        exps = gaflow.explain(model, tok, TEXTS, method="test_length")
        one = gaflow.explain(model, tok, TEXTS[1], method="test_length")
        np.testing.assert_allclose(one.scores, exps[1].scores)
        assert exps[0].scores[2] == pytest.approx(1 / 3) and exps[0].target == 1
        assert exps[0].config["kind"] == "baseline" and exps[0].config["solver"] is None
        with pytest.raises(InputError, match="not apply to the baseline 'test_length'"):
            gaflow.explain(model, tok, TEXTS[0], method="test_length", mu=0.1)
        with pytest.raises(InputError, match="exists"):
            gaflow.register_method(Length("test_length"))
    finally:
        METHODS.pop("test_length")


def test_register_method_checks_its_arguments():
    with pytest.raises(InputError, match="function"):
        gaflow.register_method("test_x")
    with pytest.raises(InputError, match="Method object"):
        gaflow.register_method(42)
    with pytest.raises(InputError, match="exists"):
        gaflow.register_method("gae", lambda batch: [])
    assert "test_x" not in METHODS


def test_cli_methods_lists_every_method(capsys):
    from gaflow import cli

    assert cli.main(["methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == method_names()
    assert all(ln.split()[1] in ("flow", "baseline") for ln in lines)
    agf = next(ln for ln in lines if ln.split()[0] == "agf")
    assert agf.endswith("[options: outputs, mu, rtol, keep_flows, backend, device]")
    assert "options" not in next(ln for ln in lines if ln.split()[0] == "gae")


def test_pipeline_is_accepted(tiny_bert):
    from transformers import pipeline

    model, tok = tiny_bert
    pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu")
    ref = gaflow.explain(model, tok, TEXTS[0])
    for exp in (gaflow.explain(pipe, TEXTS[0]), gaflow.explain(pipe, text=TEXTS[0])):
        np.testing.assert_array_equal(exp.scores, ref.scores)
        assert exp.tokens == ref.tokens
    with pytest.raises(InputError, match="own tokenizer"):
        gaflow.explain(pipe, tok, TEXTS[0])
    with pytest.raises(InputError, match="tokenizer is missing"):
        gaflow.explain(model, text=TEXTS[0])


@pytest.mark.parametrize("method", [gaflow.api.DEFAULT_METHOD, "agf", "gae", "grad_input"])
def test_captum_style_attribute_equals_explain(tiny_bert, method):
    model, tok = tiny_bert
    enc = _batch(tok)
    gaf = GAF(model, method, tokenizer=tok)
    out = gaf.attribute(enc["input_ids"], attention_mask=enc["attention_mask"])
    assert isinstance(gaf, __import__("captum").attr.Attribution)
    assert out.shape == enc["input_ids"].shape and out.dtype == torch.float64
    exps = gaflow.explain(model, tok, TEXTS, method=method)
    for b, e in enumerate(exps):
        real = enc["attention_mask"][b].bool()
        np.testing.assert_allclose(out[b, real].numpy(), e.scores, rtol=1e-6, atol=1e-12)
        assert (out[b, ~real] == 0).all()


def test_captum_style_targets_per_example(tiny_bert):
    model, tok = tiny_bert
    enc = _batch(tok)
    out = GAF(model).attribute(enc["input_ids"], target=torch.tensor([0, 1]),
                               attention_mask=enc["attention_mask"])
    for b, tgt in enumerate((0, 1)):
        ref = gaflow.explain(model, tok, TEXTS[b], target=tgt)
        real = enc["attention_mask"][b].bool()
        np.testing.assert_allclose(out[b, real].numpy(), ref.scores, rtol=1e-6, atol=1e-12)


def test_captum_style_refuses_bad_input(tiny_bert):
    model, tok = tiny_bert
    enc = _batch(tok)
    with pytest.raises(InputError, match="integer tensor"):
        GAF(model).attribute(enc["input_ids"].float())
    with pytest.raises(InputError, match="attention_mask has shape"):
        GAF(model).attribute(enc["input_ids"], attention_mask=enc["attention_mask"][:, :2])
    with pytest.raises(InputError, match="2 examples"):
        GAF(model).attribute(enc["input_ids"], target=[0, 1, 1])
    with pytest.raises(InputError, match="needs the tokenizer"):
        GAF(model, "occlusion")
    with pytest.raises(InputError, match="unknown options"):
        GAF(model, "agf", steps=3)
    with pytest.raises(InputError, match="central maximum flow"):
        GAF(model, mu=0.1)


def test_versions_is_public_and_recorded(tiny_bert):
    model, tok = tiny_bert
    v = gaflow.versions()
    assert v["torch"] == torch.__version__ and v["gaflow"] == gaflow.__version__
    v["torch"] = "changed"  # a copy: the next call is unaffected
    assert gaflow.explain(model, tok, "bad film").config["versions"] == gaflow.versions()


def test_default_split_in_one_place():
    from gaflow.data import default_split

    assert default_split("sst2") == "dev" and default_split("imdb") == "test"


def test_review_edge_cases(tiny_bert, tmp_path):
    """Numpy targets in GAF, one solver record per example, the name rules of register_flow,
    strategy and address options that cannot apply."""
    from gaflow.evaluation.benchmark import BenchConfig, run_benchmark

    model, tok = tiny_bert
    enc = _batch(tok)
    one = GAF(model).attribute(enc["input_ids"], target=np.int64(1),
                               attention_mask=enc["attention_mask"])
    ref = GAF(model).attribute(enc["input_ids"], target=1, attention_mask=enc["attention_mask"])
    assert torch.equal(one, ref)
    with pytest.raises(InputError, match="one per example"):
        GAF(model).attribute(enc["input_ids"], target=1.5)
    with pytest.raises(InputError, match="mu"):
        GAF(model, "agf", mu=-1.0)
    exps = gaflow.explain(model, tok, TEXTS)
    assert exps[0].config["solver"] is not exps[1].config["solver"]
    gaflow.flow.tensors.register_tensor("zz_tensor_test", lambda a, g: a.mean(axis=1))
    try:
        with pytest.raises(InputError, match="is an information tensor"):
            gaflow.register_flow("zz_tensor_test", "af")
    finally:
        gaflow.flow.tensors.INFORMATION_TENSORS.pop("zz_tensor_test")
    caps = np.random.default_rng(0).random((2, 3, 3))
    with pytest.raises(InputError, match="primal_dual"):
        gaflow.solve_flow(caps, strategy="primal_dual", backend="torch")
    with pytest.raises(InputError, match="give workers"):
        run_benchmark(BenchConfig(model="minilm-sst2", dataset="sst2", methods=["attention"],
                                  n=1), tmp_path / "never", address="127.0.0.1:1")


def test_cli_reader_that_stops_early_is_not_an_error():
    """``gaflow methods | head``: the closed pipe ends the command quietly (status 141)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "gaflow.cli", "methods"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
