"""gelu, bias_gelu, swiglu (Triton, run by the interpreter on CPU) against float64 references.

Error rules, per output and gradient (the bounds: kernels/tolerances.py, shared with
benchmarks/gpu.py): rule 1, max |kernel - ref64| <= factor x PyTorch's own error in the same
dtype (F.gelu, F.silu(g) * u, with autograd) + a floor; rule 2 for bfloat16 elementwise
outputs: under one bf16 ulp per element, because the interpreter's casts truncate.
Reductions (dbias) use rule 1 with the interpreter's bf16 factor.

See test_kernels_flash_attention.py for why TRITON_INTERPRET is set here and the re-run.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from kernel_env import K, needs_interpreter, needs_rerun, rerun_in_subprocess

from tinyllm.kernels.tolerances import CLOSE, elementwise_bound, error_bound

# tl.sigmoid(x) = 1 / (1 + exp(-x)): numpy warns when exp(-x) overflows to inf; the result, 0, is right.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp32", "fp16", "bf16"]
# Odd sizes: one element, a ragged tail, more than one interpreter block (1024), rows that do
# not fill a tile (8 x 64 in the interpreter) and several row blocks in the bias_gelu backward.
SHAPES = [(1,), (9, 41), (3, 7, 300), (4097,)]
BIAS_SHAPES = [(1, 1), (9, 41), (3, 17, 130), (70, 257)]


def _inputs(shape, dtype, seed, n, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=g) * spread).to(dtype) for _ in range(n)]


def _check(name, dtype, got, torch_, ref, elementwise=True):
    err = (got.double() - ref).abs()
    if dtype == torch.bfloat16 and elementwise:
        bound = elementwise_bound(dtype, ref)
        assert (err <= bound).all(), f"{name}: {(err - bound).max().item():.3g} above one bf16 ulp"
        return
    err_torch = (torch_.double() - ref).abs().max().item()
    bound = error_bound(dtype, err_torch, ref.abs().max().item(), interpreted=True)
    assert err.max().item() <= bound, (
        f"{name}: error {err.max().item():.3g} > bound {bound:.3g} (torch {err_torch:.3g})"
    )


def _run(fn, tensors, dy):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    y = fn(*leaves)
    y.backward(dy.to(y.dtype))
    return (y, *[t.grad for t in leaves])


@needs_interpreter
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gelu(shape, dtype, approximate):
    (x,) = _inputs(shape, dtype, seed=len(shape) * 100 + shape[-1], n=1)
    (dy,) = _inputs(shape, dtype, seed=1, n=1, spread=1.0)
    got = _run(lambda a: K.gelu(a, approximate=approximate), [x], dy)
    torch_ = _run(lambda a: F.gelu(a, approximate=approximate), [x], dy)
    ref = _run(lambda a: K.gelu_ref(a, approximate), [x.double()], dy.double())
    for name, a, b, r in zip(("y", "dx"), got, torch_, ref):
        assert a.dtype == dtype and a.shape == x.shape
        _check(f"gelu {name}", dtype, a, b, r)


@needs_interpreter
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=str)
def test_bias_gelu(shape, dtype, approximate):
    x, dy = _inputs(shape, dtype, seed=shape[-1], n=2)
    (b,) = _inputs(shape[-1:], dtype, seed=2, n=1, spread=1.0)
    got = _run(lambda a, c: K.bias_gelu(a, c, approximate=approximate), [x, b], dy)
    torch_ = _run(lambda a, c: F.gelu(a + c, approximate=approximate), [x, b], dy)
    ref = _run(lambda a, c: K.bias_gelu_ref(a, c, approximate), [x.double(), b.double()], dy.double())
    for name, a, t, r in zip(("y", "dx", "dbias"), got, torch_, ref):
        assert a.dtype == dtype and a.shape == r.shape
        _check(f"bias_gelu {name}", dtype, a, t, r, elementwise=name != "dbias")


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_swiglu(shape, dtype):
    gate, up = _inputs(shape, dtype, seed=shape[-1] + 7, n=2)
    (dy,) = _inputs(shape, dtype, seed=3, n=1, spread=1.0)
    got = _run(K.swiglu, [gate, up], dy)
    torch_ = _run(lambda g, u: F.silu(g) * u, [gate, up], dy)
    ref = _run(K.swiglu_ref, [gate.double(), up.double()], dy.double())
    for name, a, t, r in zip(("y", "dgate", "dup"), got, torch_, ref):
        assert a.dtype == dtype and a.shape == gate.shape
        _check(f"swiglu {name}", dtype, a, t, r)


@needs_interpreter
def test_bias_gelu_fp32_bias_with_bf16_input():
    """Under bf16 autocast F.linear gives bf16 while the bias stays float32: dbias keeps float32."""
    x, dy = _inputs((5, 33), torch.bfloat16, seed=4, n=2)
    b = torch.randn(33, requires_grad=True)
    xx = x.clone().requires_grad_()
    y = K.bias_gelu(xx, b)
    y.backward(dy)
    ref = K.bias_gelu_ref(x.double(), b.detach().double())
    assert y.dtype == torch.bfloat16 and b.grad.dtype == torch.float32
    assert ((y.double() - ref).abs() <= elementwise_bound(torch.bfloat16, ref)).all()


@needs_interpreter
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_extreme_inputs(approximate):
    """Far tails, zero and tiny values: the one-exp sigmoid form must not overflow, cancel or
    lose the sign of 2u (float32 kernel against the float64 reference)."""
    x = torch.tensor(
        [-1e4, -100.0, -30.0, -9.5, -4.0, -1.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 1.0, 4.0, 9.5, 30.0, 100.0, 1e4]
    )
    bias = torch.full((x.shape[0],), 0.25)
    dy = torch.ones_like(x)
    cases = {
        "gelu": (
            _run(lambda a: K.gelu(a, approximate), [x], dy),
            _run(lambda a: K.gelu_ref(a, approximate), [x.double()], dy.double()),
        ),
        "bias_gelu": (
            _run(lambda a, c: K.bias_gelu(a[None], c, approximate)[0], [x, bias], dy),
            _run(lambda a, c: K.bias_gelu_ref(a, c, approximate), [x.double(), bias.double()], dy.double()),
        ),
    }
    for op, (got, ref) in cases.items():
        for name, a, r in zip(("y", "dx", "dbias"), got, ref):
            assert torch.isfinite(a).all(), f"{op} {name}: {a}"
            assert torch.allclose(a.double(), r, **CLOSE[torch.float32]), f"{op} {name}: {a} vs {r}"


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_references_match_pytorch(approximate):
    """The written-out references compute what PyTorch's ops compute (float64, exact to rounding)."""
    x, b, g = (torch.randn(1000, dtype=torch.float64) * 4 for _ in range(3))
    tol = CLOSE[torch.float64]
    assert torch.allclose(K.gelu_ref(x, approximate), F.gelu(x, approximate=approximate), **tol)
    assert torch.allclose(K.bias_gelu_ref(x, b, approximate), F.gelu(x + b, approximate=approximate), **tol)
    assert torch.allclose(K.swiglu_ref(g, x), F.silu(g) * x, **tol)
    assert math.isclose(
        K.gelu_ref(torch.tensor(1.0, dtype=torch.float64), approximate).item(),
        F.gelu(torch.tensor(1.0, dtype=torch.float64), approximate=approximate).item(),
    )


@needs_rerun
def test_rerun_in_subprocess():
    rerun_in_subprocess(__file__)
