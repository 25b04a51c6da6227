"""pytest-benchmark view of tinyllm.kernels against PyTorch, on CUDA (skipped without it).

    pytest benchmarks/bench_kernels.py --benchmark-group-by=group --benchmark-columns=median,ops

Groups compare tinyllm against the alternative at one size each; every timed call ends in
torch.cuda.synchronize() so the time is the GPU's. The full sweep with TFLOP/s, GB/s, the
correctness checks and CSV rows is benchmarks/gpu.py; this file is the quick regression view.
"""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="kernel benchmarks need a CUDA device")


sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu import _import_kernels  # noqa: E402  (works from a checkout that was never pip-installed)

K = _import_kernels()


def _timed(benchmark, fn, group):
    def run():
        fn()
        torch.cuda.synchronize()
    run()  # compile / autotune outside the timing
    benchmark.group = group
    benchmark.extra_info["gpu"] = torch.cuda.get_device_name()
    benchmark.pedantic(run, rounds=20, iterations=3, warmup_rounds=2)


def _sdpa_flash(q, k, v):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize("provider", ["tinyllm", "sdpa_flash"])
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
def test_attention(benchmark, provider, mode):
    fn = {"tinyllm": lambda q, k, v: K.flash_attention(q, k, v, causal=True), "sdpa_flash": _sdpa_flash}[provider]
    q, k, v, do = (torch.randn(4, 16, 2048, 128, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    if mode == "fwd":
        def step():
            with torch.no_grad():
                fn(q, k, v)
    else:
        q, k, v = (t.requires_grad_() for t in (q, k, v))

        def step():
            fn(q, k, v).backward(do)
            q.grad = k.grad = v.grad = None
    _timed(benchmark, step, f"attention {mode} bf16 B4 H16 T2048 D128 causal")


_ACTIVATIONS = {
    "gelu": (1, lambda K, a: K.gelu(a), lambda a: F.gelu(a, approximate="tanh")),
    "bias_gelu": (2, lambda K, a, b: K.bias_gelu(a, b), lambda a, b: F.gelu(a + b, approximate="tanh")),
    "swiglu": (2, lambda K, a, b: K.swiglu(a, b), lambda a, b: F.silu(a) * b),
}


@pytest.mark.parametrize("provider", ["tinyllm", "torch_eager", "torch_compile"])
@pytest.mark.parametrize("op", list(_ACTIVATIONS))
def test_activation_fwd_bwd(benchmark, op, provider):
    n_inputs, ours, eager = _ACTIVATIONS[op]
    M, N = 16384, 8192
    x, other, dy = (torch.randn(M, N, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    inputs = [x, torch.randn(N, device="cuda", dtype=torch.bfloat16) if op == "bias_gelu" else other][:n_inputs]
    inputs = [t.requires_grad_() for t in inputs]
    fn = {"tinyllm": lambda *a: ours(K, *a), "torch_eager": eager, "torch_compile": torch.compile(eager)}[provider]

    def step():
        fn(*inputs).backward(dy)
        for t in inputs:
            t.grad = None
    _timed(benchmark, step, f"{op} fwd+bwd bf16 {M}x{N}")
