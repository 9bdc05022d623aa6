"""Planted-truth tasks for generation attributions: tiny models trained in seconds to copy or
reverse a sequence of symbols, so the source token each output depends on is known."""

from __future__ import annotations

import numpy as np
import torch

SYMBOLS = list("abcdefghij")
SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[SEP]", "[EOS]"]
LENGTH = 4


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + SYMBOLS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", sep_token="[SEP]", eos_token="[EOS]")


def _batch(rng, n):
    return rng.integers(len(SPECIAL), len(SPECIAL) + len(SYMBOLS), size=(n, LENGTH))


def train_decoder(seed=0, steps=600, heads=4):
    """GPT-2, 2 layers, ``heads`` heads: ``[BOS] x1..x4 [SEP] x1..x4`` (copy)."""
    import transformers as tf

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = tf.GPT2Config(vocab_size=len(SPECIAL) + len(SYMBOLS), n_positions=16, n_embd=64,
                        n_layer=2, n_head=heads, bos_token_id=2, eos_token_id=4, pad_token_id=0,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        attn_implementation="eager")
    model = tf.GPT2LMHeadModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x = _batch(rng, 64)
        ids = torch.tensor(np.concatenate([np.full((64, 1), 2), x, np.full((64, 1), 3), x], 1))
        logits = model(input_ids=ids).logits[:, LENGTH + 1 : -1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 ids[:, LENGTH + 2 :].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float(loss.detach())


def train_encoder_decoder(seed=0, steps=600, heads=4, arch="bart"):
    """BART (post-norm) or mBART (``arch="mbart"``, pre-norm), 2+2 layers, ``heads`` heads:
    source ``x1..x4`` -> target ``x4..x1`` (reverse)."""
    import transformers as tf

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config_cls, model_cls = {
        "bart": (tf.BartConfig, tf.BartForConditionalGeneration),
        "mbart": (tf.MBartConfig, tf.MBartForConditionalGeneration),
    }[arch]
    cfg = config_cls(vocab_size=len(SPECIAL) + len(SYMBOLS), d_model=64, encoder_layers=2,
                     decoder_layers=2, encoder_attention_heads=heads,
                     decoder_attention_heads=heads,
                     encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=16,
                     pad_token_id=0, bos_token_id=2, eos_token_id=4, decoder_start_token_id=2,
                     dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                     attn_implementation="eager")
    model = model_cls(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x = torch.tensor(_batch(rng, 64))
        y = x.flip(1)
        dec = torch.cat([torch.full((64, 1), 2), y[:, :-1]], 1)
        logits = model(input_ids=x, decoder_input_ids=dec).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float(loss.detach())


def peak_accuracy(model, tok, method, n=50, seed=123, **opts):
    """Share of generated tokens whose largest attribution is the source token they copy."""
    from gaflow.generation import explain_generation

    rng = np.random.default_rng(seed)
    hits = total = correct_outputs = 0
    encdec = bool(model.config.is_encoder_decoder)
    prompts = []
    for x in _batch(rng, n):
        words = [SYMBOLS[i - len(SPECIAL)] for i in x]
        prompts.append(" ".join(words) if encdec else "[BOS] " + " ".join(words) + " [SEP]")
    exps = explain_generation(model, tok, prompts, max_new_tokens=LENGTH, method=method,
                              stop_at_eos=False, **opts)
    for prompt, e in zip(prompts, exps, strict=True):
        words = prompt.split()
        for r in range(LENGTH):
            if encdec:
                want_pos, want = LENGTH - 1 - r, words[LENGTH - 1 - r]
            else:
                want_pos, want = 1 + r, words[1 + r]
            correct_outputs += e.generated[r] == want
            hits += int(np.argmax(e.scores[r])) == want_pos
            total += 1
    return hits / total, correct_outputs / total
