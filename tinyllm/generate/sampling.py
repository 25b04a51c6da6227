"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus)."""

from __future__ import annotations

import math

import torch

from ..errors import TinyLLMError

# setting -> (valid?, what a valid value is); None means "not given" (off) and is always valid
SAMPLING_LIMITS = {
    "temperature": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "top_k": (lambda v: v > 0, "a positive integer"),
    "top_p": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "max_tokens": (lambda v: v > 0, "a positive integer"),
    "seed": (lambda v: 0 <= v < 2**63, "in [0, 2**63)"),
}


class SamplingSettingError(TinyLLMError):
    """A sampling setting out of range: the message names the flag; .setting, .value and .wanted
    let another interface (chat's /commands) say the same in its own words."""

    def __init__(self, setting: str, value, wanted: str):
        super().__init__(f"--{setting} must be {wanted}, got {value}")
        self.setting, self.value, self.wanted = setting, value, wanted


def check_sampling(**settings) -> None:
    """Raise SamplingSettingError (a TinyLLMError) for the first setting out of range; the
    one check behind `generate` and `chat`'s flags and chat's /commands."""
    for name, value in settings.items():
        ok, wanted = SAMPLING_LIMITS[name]
        if value is not None and not ok(value):
            raise SamplingSettingError(name, value, wanted)


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Mask (to -inf) every token outside the top-k, then outside the nucleus.

    logits: (B, V). top-p keeps the smallest set of most likely tokens whose probability
    reaches p (the token that crosses p is kept; at least one token always stays).
    """
    logits = logits.clone()
    V = logits.size(-1)
    if top_k is not None and 0 < top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits[logits < kth] = float("-inf")
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass strictly before each token
        drop_sorted = before >= top_p  # already reached p without this token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits[drop] = float("-inf")
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits: (B, V) -> next ids (B,). temperature 0 is greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    if not torch.isfinite(scaled[torch.isfinite(logits)]).all():  # temperature so small it overflows: the limit
        return logits.argmax(dim=-1)
    logits = filter_logits(scaled, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
