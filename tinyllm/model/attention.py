"""Causal multi-head self-attention with three interchangeable backends.

- reference: softmax(Q K^T / sqrt(d) + causal mask) V written out; the readable spec.
- sdpa:      torch.nn.functional.scaled_dot_product_attention (flash/memory-efficient kernels).
- triton:    tinyllm.kernels.flash_attention (FlashAttention-2 style, no T x T matrix).
All three compute the same function; tests compare them. `resolve_attention` picks the
backend for a config ('auto' -> sdpa), `CausalSelfAttention.forward` dispatches on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .decode_attention import decode_attention, decode_attention_ref
from .packed_linear import plain_linear
from .positions import Rotary


def resolve_attention(attention: str, device: torch.device | str | None = None) -> str:
    """The backend a model built on `device` runs: 'auto' -> 'sdpa' on every device (measured
    faster in whole-model training; see benchmarks/README_kernels.md). 'triton' warns once
    where it does not do what it says (see check_triton_backend)."""
    backend = "sdpa" if attention == "auto" else attention
    return backend


def check_triton_backend(dropout: float, device: torch.device | str | None) -> list[str]:
    """What attention='triton' does differently from its name here, one line each (warned once):
    the flash-attention kernel has no dropout, and off CUDA (without Triton's interpreter) the
    kernels' PyTorch references run instead."""
    from ..kernels import kernel_backend

    notes = []
    if dropout > 0:
        notes.append(
            f"attention='triton': the flash-attention kernel has no dropout, so attention-probability "
            f"dropout ({dropout:g}) is skipped in training (embedding and residual dropout still apply); "
            f"use attention='sdpa' to keep it, or dropout=0"
        )
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda":
        return notes
    try:
        where = kernel_backend(torch.empty(0, device=dev))
    except RuntimeError:  # TINYLLM_KERNELS=triton where it cannot run: the first op raises, naming why
        return notes
    if where != "triton":
        notes.append(
            f"attention='triton' on {dev.type}: the Triton kernels need CUDA (or TRITON_INTERPRET=1), so "
            f"their PyTorch reference implementations run instead"
        )
    return notes


class KVCache:
    """Keys and values of every layer for incremental decoding.

    k[i], v[i]: (B, H, max_len, D), filled up to `length`.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, n_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.max_len = max_len
        self.length = 0  # tokens already stored (advanced by the model after all layers ran)

    def clone(self, dtype: torch.dtype | None = None) -> KVCache:
        """A copy of the keys and values (in `dtype`) at the same length, sharing nothing."""
        c = KVCache.__new__(KVCache)
        c.k = [t.clone().to(dtype or t.dtype) for t in self.k]
        c.v = [t.clone().to(dtype or t.dtype) for t in self.v]
        c.max_len, c.length = self.max_len, self.length
        return c

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) at positions length..length+T; return all keys/values so far."""
        start, end = self.length, self.length + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class SlotCache:
    """KV storage for up to `slots` sequences decoded together (continuous batching), each with its
    own length: a request takes a free slot, prefills it, decodes, and gives it back.

    k[i], v[i]: (slots, H, max_len, D). `view(s)` is slot s as a one-row KVCache sharing the storage,
    so prefill and decode of a slot run the very code (and shapes) a lone KVCache(batch=1) runs.
    """

    def __init__(self, n_layers: int, slots: int, n_heads: int, max_len: int, head_dim: int, device, dtype):
        shape = (slots, n_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.max_len = max_len
        self.free = list(range(slots))[::-1]  # pop() hands out slot 0 first

    @property
    def slots(self) -> int:
        return self.k[0].shape[0]

    def acquire(self) -> int:
        if not self.free:
            raise RuntimeError("no free KV-cache slot")
        return self.free.pop()

    def release(self, slot: int) -> None:
        assert slot not in self.free, f"slot {slot} released twice"
        self.free.append(slot)

    def view(self, slot: int) -> KVCache:
        """Slot `slot` as a KVCache of batch 1 and length 0, writing into this storage."""
        c = KVCache.__new__(KVCache)
        c.k = [t[slot : slot + 1] for t in self.k]  # (1, H, max_len, D) views
        c.v = [t[slot : slot + 1] for t in self.v]
        c.max_len, c.length = self.max_len, 0
        return c


def attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    start_pos: int = 0,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Causal attention, written out. q: (B, H, Tq, D); k, v: (B, H, Tk, D) where the
    queries sit at absolute positions start_pos .. start_pos+Tq-1 and keys at 0..Tk-1."""
    Tq, Tk = q.shape[2], k.shape[2]
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, Tq, Tk)
    q_pos = torch.arange(start_pos, start_pos + Tq, device=q.device)[:, None]
    k_pos = torch.arange(Tk, device=q.device)[None, :]
    att = att.masked_fill(k_pos > q_pos, float("-inf"))  # a query never sees a later key
    att = F.softmax(att.float(), dim=-1).to(q.dtype)
    att = F.dropout(att, p=dropout_p, training=training)
    return att @ v  # (B, H, Tq, D)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: str):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.layer_idx = layer_idx
        self.backend = backend
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, rotary: Rotary | None = None, cache: KVCache | None = None, start_pos: int = 0
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, H, T, D)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            q, k = rotary(q, start_pos), rotary(k, start_pos)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, H, start_pos+T, D)
        y = self.attend(q, k, v, start_pos)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return self.resid_drop(self.proj(y))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start_pos: int) -> torch.Tensor:
        """The backend dispatch: q (B, H, T, D) at positions start_pos.., k, v (B, H, Tk, D) -> (B, H, T, D)."""
        T = q.shape[2]
        p = self.dropout if self.training else 0.0
        if self.backend == "reference":
            y = attention_ref(q, k, v, start_pos, p, self.training)
        elif self.backend == "triton" and k.shape[2] == T:
            from ..kernels import flash_attention  # the kernel has no dropout: attention-prob dropout is skipped

            y = flash_attention(q, k, v, causal=True)
        elif start_pos == 0 and k.shape[2] == T:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new token attends to every cached key
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # a chunk at an offset: explicit mask
            q_pos = torch.arange(start_pos, start_pos + T, device=q.device)[:, None]
            mask = torch.arange(k.shape[2], device=q.device)[None, :] <= q_pos  # (T, Tk)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return y

    def forward_rows(
        self, x: torch.Tensor, rotary: Rotary | None, caches: list[KVCache], positions: torch.Tensor, linear=None
    ) -> torch.Tensor:
        """One new token for each of several sequences, each at its own position in its own cache.

        x: (Bp, 1, C) with Bp >= len(caches); row i < len(caches) belongs to caches[i], at position
        positions[i] == caches[i].length; rows past len(caches) are padding (positions 0, output zero).
        The projections and rotary run batched (rotary is elementwise: a row's bits do not depend on
        the others); the cache write and attention run per row over the row's own keys
        (model/decode_attention.py: one C++ call for all rows, or its per-row torch reference for the
        reference backend and where the kernel cannot run), so no row's result depends on the
        others' lengths: there is no padding mask to add rounding. linear(layer, x) runs the
        projections (TinyLLM.forward_rows passes model/packed_linear.py's on a packed model).
        """
        linear = linear or plain_linear
        Bp, T, C = x.shape
        B = len(caches)
        assert T == 1 and Bp >= B, f"forward_rows takes (Bp >= {B}, 1, C), got {tuple(x.shape)}"
        q, k, v = linear(self.qkv, x).split(C, dim=2)
        q, k, v = (t.view(Bp, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (Bp, H, 1, D)
        if rotary is not None:
            q, k = rotary.at(q, positions), rotary.at(k, positions)
        rows = decode_attention_ref if self.backend == "reference" else decode_attention
        y = rows(q, k, v, caches, self.layer_idx, self.attend)  # (Bp, H, 1, D)
        y = y.transpose(1, 2).reshape(Bp, T, C)  # (Bp, H, 1, D) -> (Bp, 1, C)
        return self.resid_drop(linear(self.proj, y))
