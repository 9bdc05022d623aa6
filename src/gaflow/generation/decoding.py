"""Greedy decoding by ``model.generate`` (KV cache, stopping at the end-of-sequence token)."""

from __future__ import annotations

import torch

from ..errors import ModelError


@torch.no_grad()
def greedy(model, ids: list[int], max_new_tokens: int, eos: int | None, pad: int,
           decoder_start: int | None = None) -> list[int]:
    """The ids of the greedy continuation of ``ids`` (a prompt, or an encoder-decoder's source),
    at most ``max_new_tokens``, ending at ``eos`` when one is given (``eos`` included).

    Plain argmax decoding: each new token is the argmax of the logits the explanation then
    reads. The model's own generation config (beams, sampling, repetition penalties, forced or
    banned tokens) is not applied: ``generate`` fills every option left unset from
    ``model.generation_config``, so a bare config stands in for it during the call.
    """
    from transformers import GenerationConfig

    if not (hasattr(model, "generate") and hasattr(model, "generation_config")):
        raise ModelError(f"{type(model).__name__} cannot generate (no generate())")
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                              eos_token_id=eos, pad_token_id=pad,
                              decoder_start_token_id=decoder_start)
    x = torch.tensor([ids], device=next(model.parameters()).device)
    saved = model.generation_config
    model.generation_config = config
    try:
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                             generation_config=config)
    finally:
        model.generation_config = saved
    new = out[0, 1:] if decoder_start is not None else out[0, len(ids):]  # start / prompt
    return [int(t) for t in new]
