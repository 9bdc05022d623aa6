"""Fine-tuning code on a tiny random model, the committed zoo artifacts, and the model CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from gaflow import cli, explain, load_model
from gaflow.errors import InputError, UnknownNameError
from gaflow.models import ZOO, train_recipe
from gaflow.models.train import TrainConfig, build_peft_model, encode, predict, save_artifact
from gaflow.models.train import train as run_train
from gaflow.models.zoo import artifact_dir, read_meta

TOY = ["the movie is good", "a great film", "very smart dog", "gorgeous witty movie",
       "the movie is bad", "a dull mess", "lifeless film", "not good , bad"]
TOY_Y = [1, 1, 1, 1, 0, 0, 0, 0]


def test_encode_head_tail(tokenizer):
    ids = encode(tokenizer, ["the a movie is good bad not very smart dog"], 8, "head_tail")[0]
    words = tokenizer.convert_ids_to_tokens(ids)
    # budget 6 = first 1 + last 5, between [CLS] and [SEP]
    assert words == ["[CLS]", "the", "good", "bad", "not", "very", "smart", "dog", "[SEP]"][:2] + [
        "bad", "not", "very", "smart", "dog", "[SEP]"]
    assert encode(tokenizer, ["the movie"], 8, "head")[0] == tokenizer("the movie")["input_ids"]
    with pytest.raises(InputError, match="head"):
        encode(tokenizer, ["x"], 8, "middle")


def test_training_steps_change_loss_and_only_adapters(tiny_bert, tmp_path):
    from peft import PeftModel

    model, tok = tiny_bert
    base = copy.deepcopy(model)
    frozen_before = base.bert.embeddings.word_embeddings.weight.detach().clone()
    cfg = TrainConfig("toy", epochs=15, lr=3e-2, batch_size=4, max_length=16, seed=3, dropout=0.0)
    pm = build_peft_model(base, cfg)
    trainable = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or ("classifier" in n) or ("pooler" in n)
                             for n in trainable)
    rec = run_train(pm, tok, TOY, TOY_Y, cfg, log=None)
    assert rec["steps"] == 30
    assert np.mean(rec["losses"][-3:]) < np.mean(rec["losses"][:3]) - 0.05
    assert torch.equal(pm.base_model.model.bert.embeddings.word_embeddings.weight, frozen_before)
    # the saved artifact reloads onto a fresh copy of the base and gives the same outputs
    save_artifact(pm, tmp_path / "a", {"label_names": ["negative", "positive"]})
    assert (tmp_path / "a" / "adapter_model.safetensors").stat().st_size < 2_000_000
    again = PeftModel.from_pretrained(copy.deepcopy(model), tmp_path / "a").merge_and_unload()
    p1 = predict(pm, tok, TOY, 16)
    p2 = predict(again, tok, TOY, 16)
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    # same seed, same run
    pm2 = build_peft_model(copy.deepcopy(model), cfg)
    rec2 = run_train(pm2, tok, TOY, TOY_Y, cfg, log=None)
    assert rec2["losses"] == rec["losses"]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_artifact_small_and_reproduces_recorded_predictions(name):
    folder = artifact_dir(name)
    meta = read_meta(folder)
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size <= 2_000_000, f"{name} artifact is {size} bytes"
    model, tok = load_model(name)
    assert model.config._attn_implementation == "eager"
    probes = meta["probes"]
    probs = predict(model, tok, [p["text"] for p in probes], meta["max_length"])
    for p, got in zip(probes, probs, strict=True):
        assert int(got.argmax()) == p["predicted"], p["text"]
        np.testing.assert_allclose(got, p["probabilities"], atol=1e-4)
    assert meta["evaluation"]["accuracy"] >= 0.85


def test_default_model_sentiment():
    model, tok = load_model()
    pos = model.config.label2id["positive"]
    probs = predict(model, tok, ["a gorgeous, witty, seductive movie.", "a dull, lifeless mess."],
                    66)
    assert probs[0].argmax() == pos and probs[1].argmax() != pos
    exp = explain(model, tok, "although this dog is not cute, it is very smart.")
    assert exp.target_label in ("positive", "negative")
    assert abs(sum(exp.scores) - exp.flow_value) < 1e-9 * max(1.0, exp.flow_value)


def test_zoo_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown recipe"):
        train_recipe("minilm-sst5", tmp_path)
    with pytest.raises(InputError, match="num_labels"):
        load_model("minilm-sst2", num_labels=3)


def test_cli_models_and_evaluate(capsys, data_dir):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ZOO)
    assert cli.main(["evaluate-model", "minilm-sst2", "--dataset", "sst2", "--n", "40",
                     "--data", str(data_dir), "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 40 and res["split"] == "dev" and res["accuracy"] >= 0.75


def test_cli_train_smoke_and_no_overwrite(tmp_path, data_dir, capsys):
    out = tmp_path / "m"
    args = ["train", "minilm-sst2", "--out", str(out), "--data", str(data_dir),
            "--max-examples", "64", "--eval-n", "16"]
    assert cli.main(args) == 0
    meta = read_meta(out)
    assert meta["train_steps"] == 2 and meta["evaluation"]["n"] == 16
    model, _ = load_model(str(out))  # a trained folder loads like a zoo model
    assert model.config.num_labels == 2
    capsys.readouterr()
    assert cli.main(args) == 2
    assert "pass --force" in capsys.readouterr().err


def test_cli_explain_default_model_offline(capsys):
    assert cli.main(["explain", "although this dog is not cute, it is very smart.",
                     "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["model"] == "minilm-sst2"
    assert data["target_label"] in ("positive", "negative")
    assert sum(data["scores"]) == pytest.approx(data["flow_value"], rel=1e-9)


def test_cli_explain_amazon_model_offline(capsys):
    """A zoo model other than the default, by name, with no hub access."""
    review = "Broke after a week: the charger stopped working. Waste of money, do not buy."
    assert cli.main(["explain", review, "--model", "minilm-amazon", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["model"] == "minilm-amazon"
    assert data["target_label"] == "negative"
    assert sum(data["scores"]) == pytest.approx(data["flow_value"], rel=1e-9)
