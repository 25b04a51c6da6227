"""One decode step's attention for rows that each sit at their own position in their own KV cache
(continuous batching: TinyLLM.forward_rows, `tinyllm serve`).

Row b stores its new key/value at position n_b = caches[b].length of its cache, then its query
attends to that cache's positions 0..n_b.
- decode_attention_ref: the obvious version, per row a cache write and one attention call with the
  very shapes a lone sequence has (q (1, H, 1, D) against (1, H, n_b + 1, D)). It runs for every
  dtype and device, and wherever the C++ ops are not built.
- decode_attention: the same in one C++ call (csrc/ops/decode_attention.cpp) when everything is
  float32 on the CPU. Per row and layer the reference costs ~6 small torch ops of dispatch each,
  which at 16 rows was most of a serving step; the kernel's arithmetic is a fixed loop over the row's
  own keys, so a row's bits never depend on the other rows either.
tests/test_decode_attention.py compares them on random rows, lengths and shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

try:
    from .. import _ops
except ImportError:  # the C++ ops did not build: the reference runs
    _ops = None


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start_pos: int) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)  # one query at the end: it sees every key


def decode_attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, caches: list, layer: int, attend: Callable = _sdpa
) -> torch.Tensor:
    """q, k, v: (Bp, H, 1, D), rows past len(caches) padding; caches[b]: a KVCache of batch 1 (or a
    SlotCache view) at length n_b. -> (Bp, H, 1, D), padding rows zero. Writes k[b], v[b] into
    caches[b] at n_b (the caller advances the lengths after the last layer). attend(q, k, v, start_pos):
    the model's attention backend."""
    ys = []
    for i, cache in enumerate(caches):
        n = cache.length
        ck, cv = cache.k[layer], cache.v[layer]  # (1, H, max_len, D)
        ck[:, :, n : n + 1] = k[i : i + 1]
        cv[:, :, n : n + 1] = v[i : i + 1]
        ys.append(attend(q[i : i + 1], ck[:, :, : n + 1], cv[:, :, : n + 1], n))  # (1, H, 1, D)
    if q.shape[0] > len(caches):
        ys.append(q.new_zeros(q.shape[0] - len(caches), *q.shape[1:]))
    return torch.cat(ys)


def native_pointers(cache) -> tuple[list[int], list[int]] | None:
    """(key, value) storage addresses per layer of a batch-1 cache whose tensors the kernel can take
    (float32, CPU, contiguous), else None; computed once per cache (its tensors never move)."""
    got = getattr(cache, "_native_pointers", False)
    if got is False:
        ok = _ops is not None and all(
            t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() and t.shape[0] == 1
            for t in (*cache.k, *cache.v)
        )
        got = ([t.data_ptr() for t in cache.k], [t.data_ptr() for t in cache.v]) if ok else None
        cache._native_pointers = got
    return got


def decode_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, caches: list, layer: int, attend: Callable = _sdpa
) -> torch.Tensor:
    """decode_attention_ref(q, k, v, caches, layer, attend) in one C++ call where it can run (float32
    CPU tensors, the C++ ops built), else the reference itself."""
    Bp, H, _, D = q.shape
    ptrs = [native_pointers(c) for c in caches]
    L = caches[0].k[layer].shape[2]
    runs = (
        all(p is not None for p in ptrs)
        and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.stride(-1) == 1 for t in (q, k, v))
        and all(c.k[layer].shape == (1, H, L, D) for c in caches)
    )
    if not runs:
        return decode_attention_ref(q, k, v, caches, layer, attend)
    out = torch.empty(Bp, H, 1, D)
    _ops.decode_attention(
        q.data_ptr(), q.stride(0), q.stride(1),
        k.data_ptr(), k.stride(0), k.stride(1),
        v.data_ptr(), v.stride(0), v.stride(1),
        [p[0][layer] for p in ptrs], [p[1][layer] for p in ptrs], [c.length for c in caches],
        out.data_ptr(), Bp, H, L, D, 1.0 / math.sqrt(D),
    )  # fmt: skip
    return out
