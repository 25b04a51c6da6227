"""The native decode step (csrc/ops/decode_step.cpp via model/decode_step.py) against forward_rows'
torch path, its reference: every position kind x activation x bias on odd shapes, rows at random
positions up to the context limit, within float32 rounding (rule 1 of kernels/tolerances.py, against
the torch path in float64); the same cache writes; a row's bits independent of the rows beside it;
and the cases where it must not run, or must notice changed weights."""

from __future__ import annotations

import os
import random

import pytest
import torch

import tinyllm.model.decode_step as DS
from tinyllm.kernels.tolerances import error_bound
from tinyllm.model.attention import KVCache
from tinyllm.model.config import ModelConfig
from tinyllm.model.gpt import TinyLLM

pytestmark = pytest.mark.skipif(
    not DS._SUPPORTED and os.environ.get("TINYLLM_REQUIRE_NATIVE") != "1",
    reason="the C++ ops are not built or this CPU lacks AVX2/FMA",
)


def test_a_width_the_cpu_lacks_is_refused():
    if DS._SUPPORTED and not DS._ops.decode_step_avx512():
        with pytest.raises(ValueError, match="panels of 16 floats"):
            DS.NativeStep(make_model("learned", "gelu", True), 16)
    with pytest.raises(ValueError, match="panels of 12 floats"):
        DS.NativeStep(make_model("learned", "gelu", True), 12)


@pytest.fixture(autouse=True, params=[8, 16], ids=["avx2", "avx512"])
def width(request, monkeypatch):
    """Every test on both kernel sets: panels of 8 floats (AVX2) and of 16 (AVX-512, where the CPU has it)."""
    if request.param == 16 and not (DS._SUPPORTED and DS._ops.decode_step_avx512()):
        pytest.skip("this CPU has no AVX-512F")
    monkeypatch.setattr(DS, "WIDTH", request.param)
    return request.param


def test_the_step_is_built_where_native_code_is_required():
    if os.environ.get("TINYLLM_REQUIRE_NATIVE") == "1":
        assert DS._SUPPORTED, "TINYLLM_REQUIRE_NATIVE=1 but tinyllm._ops has no usable DecodeStep"


def make_model(pos: str, act: str, bias: bool, seed: int = 0, **shape) -> TinyLLM:
    """A small model of odd widths (d_model, d_ff and vocab not multiples of 8) with every weight random,
    LayerNorm scales and biases included (their defaults, 1 and 0, would hide a mix-up)."""
    dims = dict(vocab_size=203, context_length=24, d_model=44, n_layers=2, n_heads=4, d_ff=37)
    if pos == "rope":
        dims["n_heads"] = 2  # an even head size (22)
    dims.update(shape)
    torch.manual_seed(seed)
    model = TinyLLM(ModelConfig(**dims, dropout=0.0, pos_emb=pos, activation=act, bias=bias)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("ln") or ".ln" in name:
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.3, 0.3)
            else:
                p.normal_(0.0, 0.25)
    return model.pack_for_inference()


def caches_at(model: TinyLLM, lengths: list[int], seed: int) -> list[KVCache]:
    """Batch-1 caches at the given lengths, their stored keys and values random."""
    g = torch.Generator().manual_seed(seed)
    caches = [model.new_cache(1) for _ in lengths]
    for c, n in zip(caches, lengths):
        for t in (*c.k, *c.v):
            t.copy_(torch.randn(t.shape, generator=g))
        c.length = n
    return caches


def cloned(caches: list[KVCache], dtype=None) -> list[KVCache]:
    return [c.clone(dtype) for c in caches]


def torch_path(model: TinyLLM, tokens, caches, dtype=torch.float32) -> torch.Tensor:
    """forward_rows' torch path (the reference), in `dtype`, on a copy of the model."""
    import copy

    ref = copy.deepcopy(model).to(dtype)
    ref.packed_inference = False
    with torch.no_grad():
        return ref.forward_rows(tokens, caches)


def spy(monkeypatch, method: str = "__call__") -> list[int]:
    """The token counts of the calls into the C++ step (`__call__`: decode, `prefill`)."""
    calls: list[int] = []
    real = getattr(DS.NativeStep, method)

    def counted(self, tokens, caches):
        calls.append(len(tokens))
        return real(self, tokens, caches)

    monkeypatch.setattr(DS.NativeStep, method, counted)
    return calls


CONFIGS = [
    (p, a, b)
    for p in ("learned", "sinusoidal", "rope")
    for a in ("gelu", "relu", "silu", "swiglu")
    for b in (True, False)
]


@pytest.mark.parametrize("pos,act,bias", CONFIGS)
def test_the_step_matches_the_torch_path(pos, act, bias, monkeypatch):
    calls = spy(monkeypatch)
    rng = random.Random(hash((pos, act, bias)) & 0xFFFF)
    model = make_model(pos, act, bias, seed=rng.randrange(1000))
    ctx = model.config.context_length
    for B in (1, 5):
        lengths = [0, ctx - 1, *[rng.randrange(ctx) for _ in range(B - 2)]][:B]
        tokens = [rng.randrange(model.config.vocab_size) for _ in range(B)]
        caches = caches_at(model, lengths, seed=rng.randrange(1000))
        ref_caches, ref64_caches = cloned(caches), cloned(caches, torch.float64)
        with torch.no_grad():
            ours = model.forward_rows(tokens, caches)
        want = torch_path(model, tokens, ref_caches)
        want64 = torch_path(model, tokens, ref64_caches, torch.float64)
        err_torch = (want.double() - want64).abs().max().item()
        bound = error_bound(torch.float32, err_torch, want64.abs().max().item(), interpreted=False)
        err = (ours.double() - want64).abs().max().item()
        assert ours.shape == (B, model.config.vocab_size)
        assert err <= bound, f"{pos}/{act}/bias={bias}, {B} rows: error {err:.3g} > bound {bound:.3g}"
        # the new keys and values at each row's position, by the same rule
        assert [c.length for c in caches] == [c.length for c in ref_caches] == [n + 1 for n in lengths]
        stored = [torch.cat([t.flatten() for t in (*c.k, *c.v)]) for c in (*caches, *ref_caches, *ref64_caches)]
        ours_kv, want_kv, want64_kv = (torch.cat(stored[i * B : (i + 1) * B]).double() for i in range(3))
        kv_bound = error_bound(
            torch.float32, (want_kv - want64_kv).abs().max().item(), want64_kv.abs().max().item(), interpreted=False
        )
        assert (ours_kv - want64_kv).abs().max().item() <= kv_bound
    assert calls == [1, 5], "the native step did not run"


def test_large_preactivations_stay_finite_and_close():
    """Weights scaled up until the MLP's inputs reach +-100s: the step's exp is clamped, never inf/nan."""
    for act in ("gelu", "silu", "swiglu"):
        model = make_model("learned", act, True, seed=3)
        with torch.no_grad():
            for block in model.blocks:
                block.ffn.fc.weight.mul_(40.0)
                if act == "swiglu":
                    block.ffn.gate.weight.mul_(40.0)
        caches = caches_at(model, [3, 17], seed=1)
        ref64 = cloned(caches, torch.float64)
        with torch.no_grad():
            ours = model.forward_rows([5, 9], caches)
        want64 = torch_path(model, [5, 9], ref64, torch.float64)
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours.double(), want64, rtol=1e-4, atol=1e-4 * want64.abs().max().item())


def test_a_rows_bits_do_not_depend_on_the_others(monkeypatch):
    """Each row alone, in a batch of 9, and in a batch of 4: the same logits and cache writes, bit for
    bit (every row count 1-9 takes another mix of the kernel's 4-row and 1-3-row tiles)."""
    calls = spy(monkeypatch)
    model = make_model("rope", "gelu", True, seed=7, d_model=68, d_ff=150, vocab_size=517)
    rng = random.Random(11)
    lengths = [rng.randrange(model.config.context_length) for _ in range(9)]
    tokens = [rng.randrange(model.config.vocab_size) for _ in range(9)]
    caches = caches_at(model, lengths, seed=5)
    with torch.no_grad():
        together = cloned(caches)
        all_rows = model.forward_rows(tokens, together)
        some = cloned(caches[2:6])
        four = model.forward_rows(tokens[2:6], some)
        for i in range(9):
            alone = cloned(caches[i : i + 1])
            one = model.forward_rows(tokens[i : i + 1], alone)
            assert torch.equal(one[0], all_rows[i]), f"row {i}: alone != in a batch of 9"
            if 2 <= i < 6:
                assert torch.equal(four[i - 2], all_rows[i]), f"row {i}: in a batch of 4 != in a batch of 9"
            for a, b in zip((*alone[0].k, *alone[0].v), (*together[i].k, *together[i].v)):
                assert torch.equal(a, b)
    assert len(calls) == 11


@pytest.mark.parametrize("case", ["unpacked", "training", "reference attention", "float64"])
def test_where_it_must_not_run_the_torch_path_does(case, monkeypatch):
    calls = spy(monkeypatch)
    model = make_model("learned", "gelu", True, attention="reference" if case == "reference attention" else "auto")
    if case == "unpacked":
        model.packed_inference = False
    elif case == "training":
        model.train()  # dropout 0, so the answer is still the reference's
    elif case == "float64":
        model = model.double()
    caches = caches_at(model, [4, 0], seed=2)
    want = torch_path(model, [1, 2], cloned(caches), next(model.parameters()).dtype)
    got = model.forward_rows([1, 2], caches)
    assert calls == []
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_caches_it_cannot_take_go_the_torch_way(monkeypatch):
    """Rows whose caches differ in length are beyond the kernel: nothing is written, the torch path answers."""
    model = make_model("learned", "gelu", True)
    caches = caches_at(model, [2, 5], seed=4)
    short = KVCache(model.config.n_layers, 1, model.config.n_heads, 10, model.config.head_dim, "cpu", torch.float32)
    short.length = 3
    rows = [caches[0], short]
    want = torch_path(model, [7, 8], cloned(rows))
    with torch.no_grad():
        got = model.forward_rows([7, 8], rows)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert [c.length for c in rows] == [3, 4]


def test_weights_changed_in_place_are_packed_again():
    model = make_model("learned", "relu", True)
    caches = caches_at(model, [6], seed=8)
    with torch.no_grad():
        model.forward_rows([3], cloned(caches))  # packs
        model.blocks[1].ffn.fc.weight.mul_(-1.5)
        model.lm_head.weight.add_(0.1)  # the tied embedding too
        got = model.forward_rows([3], cloned(caches))
    want = torch_path(model, [3], cloned(caches))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_token_outside_the_vocabulary_is_refused():
    model = make_model("learned", "gelu", True)
    caches = caches_at(model, [1], seed=0)
    with torch.no_grad(), pytest.raises(IndexError, match="token 203 outside a vocabulary of 203"):
        model.forward_rows([203], caches)
    assert caches[0].length == 1  # nothing advanced


def torch_prefill(model: TinyLLM, tokens, cache, dtype=torch.float32) -> torch.Tensor:
    """forward() on the prompt with the cache (prefill's torch path, its reference), in `dtype`."""
    import copy

    ref = copy.deepcopy(model).to(dtype)
    ref.packed_inference = False
    return ref.prefill(tokens, cache)


@pytest.mark.parametrize("pos,act,bias", [c for c in CONFIGS if c[1] in ("gelu", "swiglu")])
def test_prefill_matches_forward(pos, act, bias, monkeypatch):
    """A prompt as rows of one C++ step sharing a cache: the last logits and every stored key and value
    as forward() gives them, for prompts of 1 token to the whole context, into empty and used caches."""
    calls = spy(monkeypatch, "prefill")
    rng = random.Random(hash((pos, act, bias, "prefill")) & 0xFFFF)
    model = make_model(pos, act, bias, seed=rng.randrange(1000))
    ctx, V = model.config.context_length, model.config.vocab_size
    for start, P in ((0, 1), (0, 9), (0, ctx), (5, 1), (7, ctx - 7)):
        cache = caches_at(model, [start], seed=rng.randrange(1000))[0]
        ref, ref64 = cloned([cache])[0], cloned([cache], torch.float64)[0]
        tokens = [rng.randrange(V) for _ in range(P)]
        ours = model.prefill(tokens, cache)
        want, want64 = torch_prefill(model, tokens, ref), torch_prefill(model, tokens, ref64, torch.float64)
        assert ours.shape == (1, V) and cache.length == ref.length == start + P
        for got, w, w64 in (
            (ours, want, want64),
            *((a, b, c) for a, b, c in zip((*cache.k, *cache.v), (*ref.k, *ref.v), (*ref64.k, *ref64.v))),
        ):
            bound = error_bound(torch.float32, (w.double() - w64).abs().max().item(), w64.abs().max().item(), False)
            assert (got.double() - w64).abs().max().item() <= bound, f"{pos}/{act}, prompt {P} after {start}"
    assert calls == [1, 9, ctx, 1, ctx - 7]


def test_a_prompt_past_the_context_is_refused_before_anything_is_written():
    model = make_model("learned", "gelu", True)
    cache = caches_at(model, [20], seed=0)[0]
    before = [t.clone() for t in cache.k]
    with pytest.raises(ValueError, match="context_length is 24"):
        model.prefill([1] * 5, cache)
    assert cache.length == 20 and all(torch.equal(a, b) for a, b in zip(before, cache.k))
