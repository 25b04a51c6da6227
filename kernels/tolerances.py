"""How far a kernel may be from the exact answer: one row per dtype, for the kernel tests
(tests/test_kernels_*.py, tests/test_linear_cross_entropy.py) and benchmarks/gpu.py's checks.

    from tinyllm.kernels.tolerances import CLOSE, error_bound, elementwise_bound

Rule 1 (FlashAttention's tests), for an output or gradient against a float64 reference ref64:
    max |ours - ref64| <= factor * max |torch - ref64| + atol * max(1, max |ref64|)
`torch` is PyTorch's own op (or the written-out reference) in the same dtype: PyTorch's
error says how hard the inputs are in that dtype, so the bound scales with it. The floor
covers outputs PyTorch gets exactly (its error 0) that we reach in another order of sums:
attention's dQ at T = 1 in float32 needs 1.2e-6 (measured), hence 2e-6.

Rule 2, bfloat16 elementwise outputs under TRITON_INTERPRET=1 only:
    |ours - ref64| <= interpreter_rtol * |ref64| + atol, per element
The kernels compute in float32 and round once, but the interpreter's float32 -> bf16 cast
truncates (one ulp, 2^-7 relative) where the GPU rounds to nearest even (half an ulp). The same
truncation is biased, so sums of truncated terms (attention's P and dS, bias-GELU's dbias)
drift further: rule 1 with interpreter_factor 4 (measured up to 3.2x PyTorch's bf16 error).
On a GPU every dtype is held to factor 2 (benchmarks/gpu.py).

Rule 3, `CLOSE`: torch.testing.assert_close / torch.allclose arguments, per element, where a
result is compared with another computation of the same math rather than with PyTorch's error.
float64 appears only here (the written-out references against PyTorch's ops): the kernels
refuse float64.
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = ["CLOSE", "TOLERANCES", "Tolerance", "elementwise_bound", "error_bound", "tolerance"]


@dataclasses.dataclass(frozen=True)
class Tolerance:
    factor: float  # rule 1: ours <= factor x PyTorch's error in this dtype (+ floor)
    interpreter_factor: float  # rule 1 under TRITON_INTERPRET=1 (bf16: its casts truncate)
    atol: float  # the floor of rules 1 and 2, times max(1, max |ref|) in rule 1
    interpreter_rtol: float | None = None  # rule 2 (bf16 elementwise, interpreter): one ulp


# Floors, measured need: float32 1.2e-6 (above); float16 and bfloat16 none in any kernel test
# or any GPU check of results/gpu.csv (2026-11-26: every bound >= 2.1x the error with these).
TOLERANCES = {
    torch.float32: Tolerance(factor=2.0, interpreter_factor=2.0, atol=2e-6),
    torch.float16: Tolerance(factor=2.0, interpreter_factor=2.0, atol=1e-4),
    torch.bfloat16: Tolerance(factor=2.0, interpreter_factor=4.0, atol=1e-3, interpreter_rtol=2.0**-7),
}

CLOSE = {
    # float64 references against PyTorch's float64 ops: equal up to rounding.
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    # float32 against float32 in another order of operations (Triton against the reference
    # path, compiled against eager, the chunked loss against the plain one; measured need:
    # under 3e-7 beyond rtol 1e-5), and a float32 kernel against float64 on far-tail inputs.
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
}


def tolerance(dtype: torch.dtype | str) -> Tolerance:
    """The row for a torch dtype or its name ("bfloat16", as benchmarks/gpu.py's rows carry it)."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."))
    if dtype not in TOLERANCES:
        raise KeyError(f"no tolerance for {dtype}: expected one of {sorted(map(str, TOLERANCES))}")
    return TOLERANCES[dtype]


def error_bound(dtype: torch.dtype | str, err_torch: float, ref_absmax: float, interpreted: bool) -> float:
    """Rule 1: the largest max |ours - ref64| allowed, given PyTorch's max error in the same dtype
    and max |ref64|. `interpreted`: the kernel ran under TRITON_INTERPRET=1."""
    t = tolerance(dtype)
    return (t.interpreter_factor if interpreted else t.factor) * err_torch + t.atol * max(1.0, ref_absmax)


def elementwise_bound(dtype: torch.dtype | str, ref: torch.Tensor) -> torch.Tensor:
    """Rule 2 (bf16 elementwise outputs in the interpreter): the allowed |ours - ref64| per element."""
    t = tolerance(dtype)
    if t.interpreter_rtol is None:
        raise ValueError(f"{dtype} has no elementwise rule: use error_bound")
    return t.interpreter_rtol * ref.abs() + t.atol
