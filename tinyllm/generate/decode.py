"""Autoregressive generation with a KV cache, streaming token by token."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import torch

from ..model.gpt import TinyLLM
from .sampling import sample_next


@torch.no_grad()
def generate_ids(
    model: TinyLLM,
    prompt_ids: list[int],
    max_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> Iterator[int]:
    """Yield up to max_tokens new ids after the prompt; stop after yielding nothing at eos_id.

    With use_cache the prompt is run once and each new token costs one position;
    without it every step re-runs the whole window (the slow, obvious twin for tests).
    Past context_length the model sees the last context_length tokens, as the uncached
    twin does: positions shift with the window, so each such step rebuilds the cache
    over the whole window (exact, and no cheaper than the uncached step).
    """
    if not prompt_ids:
        raise ValueError("generation needs at least one prompt token")
    model.eval()
    device = next(model.parameters()).device
    ctx = model.config.context_length
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    seq = list(prompt_ids)
    cache = None
    pending = seq[-ctx:]  # tokens not yet in the cache
    for _ in range(max_tokens):
        if use_cache:
            if cache is None or cache.length + len(pending) > ctx:
                cache = model.new_cache(1)
                pending = seq[-ctx:]
            if len(pending) == 1 and cache.length > 0:
                # the decode step `tinyllm serve` batches: its padded rows make this the same bits alone or not
                last = model.forward_rows(pending, [cache])  # (1, V)
            else:  # the prompt (or the window after a rebuild): as `tinyllm serve` prefills it
                last = model.prefill(pending, cache)
        else:
            last = model(torch.tensor([seq[-ctx:]], device=device))[0][:, -1, :]
        nxt = int(sample_next(last, temperature, top_k, top_p, gen)[0])
        if eos_id is not None and nxt == eos_id:
            return
        seq.append(nxt)
        pending = [nxt]
        yield nxt


def stream_text(tokenizer, ids: Iterator[int]) -> Iterator[str]:
    """Turn a stream of ids into text pieces; a character split across tokens is held
    back until its last byte arrives (incremental UTF-8 decoding)."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for i in ids:
        piece = dec.decode(tokenizer.decode_bytes([i]))
        if piece:
            yield piece
    tail = dec.decode(b"", final=True)
    if tail:
        yield tail


def generate(
    model: TinyLLM,
    tokenizer,
    prompt: str,
    max_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_at_eos: bool = True,
) -> str:
    """Generated text after `prompt` (not including it)."""
    ids = tokenizer.encode(prompt) or [tokenizer.bos_id]
    out = generate_ids(
        model, ids, max_tokens, temperature, top_k, top_p, tokenizer.eos_id if stop_at_eos else None, seed
    )
    return "".join(stream_text(tokenizer, out))
