"""Decoder-only and encoder-decoder generation: what differs between the two, behind one
interface that :mod:`gaflow.generation.driver` runs.

A strategy says how a prompt becomes token ids (and the generated ids), which tensors of the
model's forward pass form each transformer stack, which logit row explains generated token
``r``, how many positions of each stack take part in that row's graph, and how the stacks'
capacities form one layered graph (:mod:`gaflow.flow.seq2seq`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..batching import pad_ids
from ..capture.stream import layer_count, layer_modules
from ..errors import InputError, ModelError
from ..flow.seq2seq import decoder_graph, encoder_decoder_graph
from ..result import GenerationExplanation
from .decoding import greedy


@dataclass
class Item:
    """One prompt's token ids: ``ids`` (the prompt, or an encoder-decoder's source), the
    ``generated`` (or scored) ids, and the decoder start id (encoder-decoders)."""

    prompt: str
    ids: list[int]
    generated: list[int]
    start: int | None = None


@dataclass
class Stack:
    """One transformer stack of a forward pass: per layer, the (B, H, t, t) self-attention, the
    (B, t, d) stream entering the layer, and the (B, H, t, s) cross-attention into the previous
    stack (``None`` without one). ``causal``: the self-attention is masked to ``j <= i``."""

    attentions: tuple
    hidden: tuple | None
    cross: tuple | None
    causal: bool


def _generated(model, tokenizer, ids, continuation, max_new, eos, start=None) -> list[int]:
    """The ids to explain: the continuation's (without special tokens; an encoder-decoder's
    as a target text) or the greedy continuation of ``ids``."""
    if continuation is not None:
        text = {"text": continuation} if start is None else {"text_target": continuation}
        gen = tokenizer(**text, add_special_tokens=False)["input_ids"]
    else:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        gen = greedy(model, ids, max_new, eos, pad, decoder_start=start)
    if not gen:
        raise InputError("nothing to explain: the continuation has no tokens")
    return gen


def _pad(tokenizer, rows, device):
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pad_ids(rows, pad, device)  # right padding: real positions are unchanged


class DecoderOnly:
    """A causal decoder (GPT-2, Llama, ...): the players of row ``r`` are positions
    ``0..p``, ``p = n_prompt - 1 + r`` the position whose next-token logit is read."""

    architecture = "decoder"

    def item(self, model, tokenizer, prompt, continuation, max_new, eos) -> Item:
        ids = tokenizer(prompt)["input_ids"]
        gen = _generated(model, tokenizer, ids, continuation, max_new, eos)
        return Item(prompt, ids, gen)

    def inputs(self, tokenizer, items, device) -> dict:
        # the last generated token is never read: inputs are prompt + generated[:-1]
        x, m = _pad(tokenizer, [it.ids + it.generated[:-1] for it in items], device)
        return {"input_ids": x, "attention_mask": m}

    def stacks(self, out) -> list[Stack]:
        if not out.attentions:
            raise ModelError("the model returned no attentions; load it with eager attention")
        return [Stack(out.attentions, out.hidden_states, None, causal=True)]

    def layers(self, model) -> list[list]:
        """Per stack, its transformer layers."""
        return [layer_modules(model, layer_count(model))]

    def readout(self, item: Item, r: int) -> int:
        return len(item.ids) - 1 + r

    def extents(self, item: Item, r: int) -> list[int]:
        return [len(item.ids) + r]

    def graph(self, item, r, blocks, opts):
        """``blocks``: per stack ``(self, cross)`` capacities; returns (caps, outputs, mask)."""
        p = self.readout(item, r)
        caps, outputs = decoder_graph(blocks[0][0], p)
        mask = np.ones(p + 1, dtype=bool)
        if opts["exclude_first"] and p > 0:
            mask[0] = False
        return caps, outputs, mask

    def extra(self, item: Item) -> dict:
        return {"n_tokens": len(item.ids) + len(item.generated)}

    def result(self, tokenizer, item, scores, values, method, config) -> GenerationExplanation:
        toks = tokenizer.convert_ids_to_tokens(item.ids + item.generated)
        return GenerationExplanation(
            prompt=item.prompt, tokens=toks, generated=toks[len(item.ids):], scores=scores,
            flow_values=values, n_source=0, n_prompt=len(item.ids), architecture="decoder",
            method=method, config=config,
        )


class EncoderDecoder:
    """An encoder-decoder (T5, BART, Marian): source tokens then decoder-input tokens (the start
    token and the generated ones but the last); row ``r`` reads decoder position ``r``."""

    architecture = "encoder-decoder"

    def item(self, model, tokenizer, prompt, continuation, max_new, eos) -> Item:
        src = tokenizer(prompt)["input_ids"]
        start = model.config.decoder_start_token_id
        if start is None:
            raise ModelError("the model config has no decoder_start_token_id")
        gen = _generated(model, tokenizer, src, continuation, max_new, eos, start)
        return Item(prompt, src, gen, start)

    def inputs(self, tokenizer, items, device) -> dict:
        src, src_m = _pad(tokenizer, [it.ids for it in items], device)
        dec, dec_m = _pad(tokenizer, [[it.start, *it.generated[:-1]] for it in items], device)
        return {"input_ids": src, "attention_mask": src_m, "decoder_input_ids": dec,
                "decoder_attention_mask": dec_m}

    def stacks(self, out) -> list[Stack]:
        if not (out.encoder_attentions and out.decoder_attentions and out.cross_attentions):
            raise ModelError("the model returned no attentions; load it with eager attention")
        return [Stack(out.encoder_attentions, out.encoder_hidden_states, None, causal=False),
                Stack(out.decoder_attentions, out.decoder_hidden_states, out.cross_attentions,
                      causal=True)]

    def layers(self, model) -> list[list]:
        """Per stack (encoder, decoder), its transformer layers."""
        config = model.config
        return [layer_modules(model.get_encoder(), config.encoder_layers),
                layer_modules(model.get_decoder(), config.decoder_layers)]

    def readout(self, item: Item, r: int) -> int:
        return r

    def extents(self, item: Item, r: int) -> list[int]:
        return [len(item.ids), len(item.generated)]

    def graph(self, item, r, blocks, opts):
        (enc, _), (dec, cross) = blocks
        caps, outputs = encoder_decoder_graph(enc, dec, cross, r, opts["cross_weight"])
        return caps, outputs, None

    def extra(self, item: Item) -> dict:
        return {"n_source": len(item.ids), "n_generated": len(item.generated)}

    def result(self, tokenizer, item, scores, values, method, config) -> GenerationExplanation:
        s = len(item.ids)
        return GenerationExplanation(
            prompt=item.prompt,
            tokens=tokenizer.convert_ids_to_tokens(item.ids)
            + tokenizer.convert_ids_to_tokens([item.start, *item.generated[:-1]]),
            generated=tokenizer.convert_ids_to_tokens(item.generated), scores=scores,
            flow_values=values, n_source=s, n_prompt=s, architecture="encoder-decoder",
            method=method, config=config,
        )


def strategy_for(model) -> DecoderOnly | EncoderDecoder:
    """The strategy of ``model``: encoder-decoder when its config says so."""
    return EncoderDecoder() if getattr(model.config, "is_encoder_decoder", False) \
        else DecoderOnly()


__all__ = ["DecoderOnly", "EncoderDecoder", "Item", "Stack", "strategy_for"]
