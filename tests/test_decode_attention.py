"""The C++ decode attention (csrc/ops/decode_attention.cpp) against its per-row torch reference
(model/decode_attention.py), on random rows, lengths and shapes: the same outputs within float32
rounding (rule 1 of kernels/tolerances.py, against float64), the same cache writes, and a row's bits
independent of the rows beside it."""

from __future__ import annotations

import os
import random

import pytest
import torch

import tinyllm.model.decode_attention as DA
from tinyllm.kernels.tolerances import error_bound
from tinyllm.model.attention import KVCache, SlotCache

native = pytest.mark.skipif(
    DA._ops is None and os.environ.get("TINYLLM_REQUIRE_NATIVE") != "1", reason="the C++ ops are not built"
)


def test_the_ops_are_built_where_native_code_is_required():
    if os.environ.get("TINYLLM_REQUIRE_NATIVE") == "1":
        assert DA._ops is not None, "TINYLLM_REQUIRE_NATIVE=1 but tinyllm._ops did not import"


def make_rows(rng: random.Random, B: int, H: int, D: int, L: int, slot_views: bool, dtype=torch.float32):
    """B caches at random lengths 0..L-1 (the first at 0, the last at L-1 when B > 1), filled with
    random keys/values, and q, k, v of Bp = B rounded up to 4 rows as strided views of one qkv
    projection output, as forward_rows has them."""
    lengths = [rng.randrange(L) for _ in range(B)]
    lengths[0] = 0
    if B > 1:
        lengths[-1] = L - 1
    if slot_views:
        store = SlotCache(1, B + 2, H, L, D, "cpu", dtype)
        caches = [store.view(s) for s in rng.sample(range(B + 2), B)]  # slots in any order
    else:
        caches = [KVCache(1, 1, H, L, D, "cpu", dtype) for _ in range(B)]
    for c, n in zip(caches, lengths):
        c.k[0].normal_()
        c.v[0].normal_()
        c.length = n
    Bp = -(-B // 4) * 4
    qkv = torch.randn(Bp, 1, 3 * H * D, dtype=dtype) * 2
    q, k, v = (t.view(Bp, 1, H, D).transpose(1, 2) for t in qkv.split(H * D, dim=2))  # (Bp, H, 1, D)
    return q, k, v, caches


def clone_caches(caches, dtype=None):
    return [c.clone(dtype) for c in caches]


SHAPES = [(1, 1, 1, 1), (3, 2, 7, 5), (4, 3, 8, 9), (5, 6, 32, 40), (8, 2, 33, 17), (13, 4, 64, 3)]  # (B, H, D, L)


@native
@pytest.mark.parametrize("B,H,D,L", SHAPES)
@pytest.mark.parametrize("slot_views", [True, False])
def test_kernel_matches_the_reference(B, H, D, L, slot_views, monkeypatch):
    rng = random.Random(random.randrange(10**6))
    q, k, v, caches = make_rows(rng, B, H, D, L, slot_views)
    ref_caches, ref64_caches = clone_caches(caches), clone_caches(caches, torch.float64)
    called = []
    monkeypatch.setattr(DA, "decode_attention_ref", lambda *a, **kw: called.append(1))
    got = DA.decode_attention(q, k, v, caches, 0)
    assert not called, "the float32 CPU case fell back to the reference"
    monkeypatch.undo()
    want = DA.decode_attention_ref(q, k, v, ref_caches, 0)  # PyTorch's SDPA in float32
    want64 = DA.decode_attention_ref(q.double(), k.double(), v.double(), ref64_caches, 0)
    assert got.shape == want.shape == (q.shape[0], H, 1, D)
    assert torch.equal(got[B:], torch.zeros_like(got[B:])), "padding rows are not zero"
    err_torch = (want.double() - want64).abs().max().item()
    bound = error_bound(torch.float32, err_torch, want64.abs().max().item(), interpreted=False)
    assert (got.double() - want64).abs().max().item() <= bound
    for c, r in zip(caches, ref_caches):  # the new key/value went to the same place, bit for bit
        assert torch.equal(c.k[0], r.k[0]) and torch.equal(c.v[0], r.v[0])


@native
def test_a_rows_bits_do_not_depend_on_the_others():
    rng = random.Random(random.randrange(10**6))
    q, k, v, caches = make_rows(rng, 9, 3, 24, 30, slot_views=True)
    together = DA.decode_attention(q, k, v, clone_caches(caches), 0)
    for b in (0, 4, 8):
        alone = DA.decode_attention(q[b : b + 1], k[b : b + 1], v[b : b + 1], clone_caches(caches[b : b + 1]), 0)
        assert torch.equal(alone[0], together[b])


def test_other_dtypes_take_the_reference(monkeypatch):
    q, k, v, caches = make_rows(random.Random(0), 3, 2, 8, 6, slot_views=True, dtype=torch.float64)
    called = []
    real = DA.decode_attention_ref
    monkeypatch.setattr(DA, "decode_attention_ref", lambda *a, **kw: called.append(1) or real(*a, **kw))
    DA.decode_attention(q, k, v, caches, 0)
    assert called


@native
def test_a_position_outside_the_cache_is_refused():
    q, k, v, caches = make_rows(random.Random(0), 2, 2, 8, 6, slot_views=False)
    caches[1].length = 6  # its cache holds positions 0..5
    with pytest.raises(IndexError, match="position 6 outside a cache of 6"):
        DA.decode_attention(q, k, v, caches, 0)
