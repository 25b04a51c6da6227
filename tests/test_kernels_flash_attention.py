"""flash_attention (Triton, run by the interpreter on CPU) against a float64 reference.

Error rule (FlashAttention's own tests): for the output and each of dQ, dK, dV,
    max |kernel - ref64| <= factor * max |torch - ref64| + atol * max(1, max |ref64|)
where `torch` is the written-out PyTorch attention (`flash_attention_ref`) in the same dtype;
factor and atol per dtype in kernels/tolerances.py, shared with benchmarks/gpu.py (bf16 in
the interpreter gets factor 4: its casts truncate, see there).

TRITON_INTERPRET=1 must be set before triton is first imported; this module sets it when
triton is not imported yet. If it already was (another module imported torch._dynamo), the
interpreter cannot be switched on here and this file re-runs itself in a subprocess.
"""

import pytest
import torch
from kernel_env import K, needs_interpreter, needs_rerun, rerun_in_subprocess

from tinyllm.kernels.tolerances import error_bound

# tl.sigmoid(x) = 1 / (1 + exp(-x)): numpy warns when exp(-x) overflows to inf; the result, 0, is right.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")


def _attention_case(B, H, T, D, dtype, causal, seed, scale=None, layout="contiguous"):
    """Run kernel, same-dtype PyTorch and float64 reference; return {name: (err_kernel, err_torch, bound)}."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, H, D) if layout == "bthd" else (B, H, T, D)
    q, k, v, do = (torch.randn(shape, generator=g) for _ in range(4))
    if layout == "bthd":  # the model's layout: (B, T, H, D) viewed as (B, H, T, D), head dim contiguous
        q, k, v, do = (t.transpose(1, 2) for t in (q, k, v, do))

    def run(fn, dt):
        qq, kk, vv = (t.detach().to(dt).requires_grad_() for t in (q, k, v))
        out = fn(qq, kk, vv, causal=causal, softmax_scale=scale)
        out.backward(do.to(dt))
        return out, qq.grad, kk.grad, vv.grad

    got = run(K.flash_attention, dtype)
    torch_ = run(K.flash_attention_ref, dtype)
    ref = run(K.flash_attention_ref, torch.float64)
    result = {}
    for name, a, b, r in zip(("out", "dq", "dk", "dv"), got, torch_, ref):
        assert a.dtype == dtype and a.shape == r.shape
        err = (a.double() - r).abs().max().item()
        err_torch = (b.double() - r).abs().max().item()
        result[name] = (err, err_torch, error_bound(dtype, err_torch, r.abs().max().item(), interpreted=True))
    return result


def _assert_within(result):
    bad = {k: v for k, v in result.items() if not v[0] <= v[2]}
    assert not bad, "kernel error above bound (err, torch err, bound): " + repr(bad)


@needs_interpreter
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("D", [48, 64, 80])
@pytest.mark.parametrize("T", [1, 17, 100, 257])
def test_flash_attention_float32(T, D, causal):
    assert K.kernel_backend(torch.zeros(1)) == "triton"
    B, H = (1, 2) if T > 200 else (2, 2)
    _assert_within(_attention_case(B, H, T, D, torch.float32, causal, seed=1000 * T + D + causal))


@needs_interpreter
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("T,D,causal", [(17, 48, True), (100, 80, True), (257, 64, False), (100, 64, True)])
def test_flash_attention_half(T, D, causal, dtype):
    """fp16 is faithful in the interpreter; bf16 runs with UPCAST_DOT (see flash_attention.py)."""
    _assert_within(_attention_case(1, 2, T, D, dtype, causal, seed=7 * T + D))


@needs_interpreter
@pytest.mark.parametrize("D", [16, 96, 128])
def test_flash_attention_head_dim_range(D):
    _assert_within(_attention_case(1, 1, 33, D, torch.float32, True, seed=D))


@needs_interpreter
def test_flash_attention_strided_inputs_and_scale():
    """Transposed (B, T, H, D) views as the model passes them, a custom scale, B and H > 1."""
    _assert_within(_attention_case(2, 3, 45, 32, torch.float32, True, seed=5, scale=0.3, layout="bthd"))


@needs_interpreter
def test_flash_attention_large_scores_are_stable():
    """Scores of +-100s: the online softmax must not overflow (no NaN/inf in out or grads)."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 1, 70, 32, generator=g).requires_grad_() for _ in range(3))
    out = K.flash_attention(q, k, v, causal=False, softmax_scale=30.0)
    out.sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in (q, k, v))
    with torch.no_grad():
        torch_ = K.flash_attention_ref(q, k, v, causal=False, softmax_scale=30.0)
        ref = K.flash_attention_ref(q.double(), k.double(), v.double(), causal=False, softmax_scale=30.0)
    err, err_torch = ((t.double() - ref).abs().max().item() for t in (out, torch_))
    assert err <= error_bound(torch.float32, err_torch, ref.abs().max().item(), interpreted=True), (err, err_torch)


@needs_rerun
def test_rerun_in_subprocess():
    rerun_in_subprocess(__file__)
