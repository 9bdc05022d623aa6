"""Tiny random classifiers built from configs (no hub access) and their tokenizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

WORDS = (
    "the a movie is good bad not very smart dog cute although it this was film great "
    "dull lifeless mess gorgeous witty seductive , ."
).split()


def _wordpiece_tokenizer(tmp_path):
    import inspect

    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ly"]
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers 5
        tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    else:  # transformers 4
        path = tmp_path / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n")
        tok = BertTokenizerFast(vocab_file=str(path), do_lower_case=True)
    assert tok.tokenize("the dogs") == ["the", "dog", "##s"], "test vocabulary not loaded"
    return tok


def _build(arch: str, tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    common = dict(
        vocab_size=tokenizer.vocab_size,
        num_labels=2,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager",
    )
    if arch == "bert":
        cfg = tf.BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            **common,
        )
        model = tf.BertForSequenceClassification(cfg)
    elif arch == "roberta":
        common["max_position_embeddings"] = 70  # RoBERTa offsets positions by padding_idx + 1
        cfg = tf.RobertaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            **common,
        )
        model = tf.RobertaForSequenceClassification(cfg)
    elif arch == "distilbert":
        cfg = tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common)
        model = tf.DistilBertForSequenceClassification(cfg)
    elif arch == "electra":
        cfg = tf.ElectraConfig(
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            **common,
        )
        model = tf.ElectraForSequenceClassification(cfg)
    else:  # pragma: no cover
        raise ValueError(arch)
    model.config.id2label = {0: "negative", 1: "positive"}
    model.config.label2id = {"negative": 0, "positive": 1}
    return model.eval()


ARCHS = ["bert", "roberta", "distilbert", "electra"]


def saved_model(model_and_tokenizer, folder):
    """Save a (model, tokenizer) pair to ``folder`` (a model directory the CLI and the Ray
    actors load by path); returns ``folder``."""
    model, tok = model_and_tokenizer
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return _wordpiece_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session", params=ARCHS)
def tiny(request, tokenizer):
    """(arch, model, tokenizer) for each supported encoder family."""
    return request.param, _build(request.param, tokenizer), tokenizer


@pytest.fixture(scope="session")
def tiny_bert(tokenizer):
    return _build("bert", tokenizer), tokenizer


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def data_dir():
    """The local data folder: $GAFLOW_DATA, else ../shared/data next to the repository."""
    import os
    from pathlib import Path

    env = os.environ.get("GAFLOW_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (path / "sst2").is_dir():
        pytest.skip(f"local datasets not found at {path} (set GAFLOW_DATA)")
    return path
