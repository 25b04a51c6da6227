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

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="kernel benchmarks need a CUDA device")


sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu import _import_kernels, activation_ops, attention_providers  # noqa: E402  (works uninstalled)

K = _import_kernels()


def _timed(benchmark, fn, group):
    def run():
        fn()
        torch.cuda.synchronize()

    run()  # compile / autotune outside the timing
    benchmark.group = group
    benchmark.extra_info["gpu"] = torch.cuda.get_device_name()
    benchmark.pedantic(run, rounds=20, iterations=3, warmup_rounds=2)


@pytest.mark.parametrize("provider", ["tinyllm", "sdpa_flash"])
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
def test_attention(benchmark, provider, mode):
    fn = attention_providers(K, "cuda")[provider]
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


@pytest.mark.parametrize("provider", ["tinyllm", "torch_eager", "torch_compile"])
@pytest.mark.parametrize("op", ["gelu", "bias_gelu", "swiglu"])
def test_activation_fwd_bwd(benchmark, op, provider):
    pick, ours, eager, _ = activation_ops(K)[op]
    M, N = 16384, 8192
    x, other, dy = (torch.randn(M, N, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    inputs = [t.requires_grad_() for t in pick(x, other, torch.randn(N, device="cuda", dtype=torch.bfloat16))]
    fn = {"tinyllm": ours, "torch_eager": eager, "torch_compile": torch.compile(eager)}[provider]

    def step():
        fn(*inputs).backward(dy)
        for t in inputs:
            t.grad = None

    _timed(benchmark, step, f"{op} fwd+bwd bf16 {M}x{N}")
