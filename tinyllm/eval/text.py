"""A model's loss, perplexity and bits per byte on a whole held-out token stream.

The stream is cut into non-overlapping context-length chunks (not a sliding window): chunk k feeds
ids[kT : kT+T] and scores targets ids[kT+1 : kT+T+1], so every id but the first is scored exactly once,
with 0..T-1 tokens of context (T/2 on average, as in training windows). A sliding window would give
each token more context at T/stride times the cost; chunks are what training sees and cheap.

`evaluate_ids` is the batched fast path; `evaluate_ids_ref` is the spec: one chunk at a time, the
full logits, log-softmax in float64, one target and its decode_bytes at a time.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TinyLLMError
from ..model.loss import IGNORE_INDEX
from .bytes import bits_per_byte, token_byte_lengths


@dataclass
class EvalResult:
    """What `tinyllm eval` reports."""

    loss: float
    """Mean cross-entropy per scored token, nats."""
    perplexity: float
    """exp(loss)."""
    bpb: float
    """Bits per UTF-8 byte: nats / ln 2 / bytes."""
    tokens: int
    """Scored target tokens."""
    bytes: int
    """UTF-8 bytes the scored tokens stand for (eval/bytes.py)."""
    nats: float
    """Total cross-entropy over the scored tokens."""
    chunks: int
    """Context-length chunks evaluated."""

    @classmethod
    def from_totals(cls, nats: float, tokens: int, n_bytes: int, chunks: int) -> EvalResult:
        loss = nats / tokens
        return cls(loss, math.exp(min(loss, 700.0)), bits_per_byte(nats, n_bytes), tokens, n_bytes, nats, chunks)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_stream(ids, context_length: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) < 2:
        raise TinyLLMError(f"the text is {len(ids)} token(s) long; evaluation needs at least 2 (one to predict)")
    if context_length <= 0:
        raise TinyLLMError(f"context_length must be positive, got {context_length}")
    return ids


@torch.no_grad()
def evaluate_ids(
    model, ids, lengths: np.ndarray, batch_size: int = 16, device="cpu", autocast=contextlib.nullcontext
) -> EvalResult:
    """ids: the token stream (N,); lengths: token_byte_lengths(tokenizer). Batches of batch_size chunks."""
    T = model.config.context_length
    ids = _check_stream(ids, T)
    if batch_size <= 0:
        raise TinyLLMError(f"--batch_size must be positive, got {batch_size}")
    n_targets = len(ids) - 1
    n_chunks = -(-n_targets // T)
    # one (n_chunks, T) grid of inputs and targets; the last chunk's tail is padding: input id 0,
    # target IGNORE_INDEX (attention is causal, so padding after a position never changes it)
    x = np.zeros(n_chunks * T, dtype=np.int64)
    y = np.full(n_chunks * T, IGNORE_INDEX, dtype=np.int64)
    x[:n_targets], y[:n_targets] = ids[:-1], ids[1:]
    X, Y = torch.from_numpy(x).view(n_chunks, T), torch.from_numpy(y).view(n_chunks, T)
    was_training = model.training
    model.eval()
    nats = 0.0
    for b in range(0, n_chunks, batch_size):
        xb, yb = X[b : b + batch_size], Y[b : b + batch_size]  # (B, T)
        with autocast():
            _, loss = model(xb.to(device), yb.to(device), return_logits=False)
        nats += loss.item() * int((yb != IGNORE_INDEX).sum())  # the loss is the mean over scored targets
    model.train(was_training)
    return EvalResult.from_totals(nats, n_targets, int(lengths[ids[1:]].sum()), n_chunks)


@torch.no_grad()
def evaluate_ids_ref(model, ids, tokenizer) -> EvalResult:
    """The spec of evaluate_ids: chunk by chunk, target by target."""
    T = model.config.context_length
    ids = [int(i) for i in _check_stream(ids, T)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nats, n_bytes, tokens, chunks = 0.0, 0, 0, 0
    for start in range(0, len(ids) - 1, T):
        x = ids[start : start + T]
        targets = ids[start + 1 : start + T + 1]
        x = x[: len(targets)]
        logits, _ = model(torch.tensor([x], device=device))  # (1, t, V)
        logp = F.log_softmax(logits[0].double(), dim=-1)  # (t, V)
        for t, target in enumerate(targets):
            nats -= float(logp[t, target])
            n_bytes += len(tokenizer.decode_bytes([target]))
            tokens += 1
        chunks += 1
    model.train(was_training)
    return EvalResult.from_totals(nats, tokens, n_bytes, chunks)


__all__ = ["EvalResult", "evaluate_ids", "evaluate_ids_ref", "token_byte_lengths"]
