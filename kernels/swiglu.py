"""Fused SwiGLU in Triton, forward and backward, with its reference.

    h = swiglu(gate, up)      # silu(gate) * up, gate and up of one shape

Math (s = sigmoid(g)):
    y      = silu(g) * u = g s u
    dy/du  = g s
    dy/dg  = u * s (1 + g (1 - s))          (d silu / dg = s + g s (1 - s))

One pass each way: the forward reads g, u and writes y; the backward reads dy, g, u and
writes dg, du, recomputing s (nothing but the inputs is saved: no silu(g) tensor). Math is
float32; outputs take the inputs' dtype.

Interpreter (TRITON_INTERPRET=1): float32 and float16 are faithful; float32 -> bf16 casts
truncate there (the GPU rounds to nearest even), so bf16 results can be one ulp off.
"""

from __future__ import annotations

import torch

from .dispatch import check_elementwise_input, kernel_backend, launch_elementwise, tl, triton

__all__ = ["swiglu", "swiglu_ref", "SwiGLUFunction"]


def swiglu_ref(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up, computed in at least float32 and rounded once."""
    g = gate.to(torch.promote_types(gate.dtype, torch.float32))
    u = up.to(g.dtype)
    return (g * torch.sigmoid(g) * u).to(gate.dtype)


@triton.jit
def _swiglu_fwd_kernel(G, U, Y, n_elements, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
    y = g * tl.sigmoid(g) * u
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(DY, G, U, DG, DU, n_elements, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(g)  # recomputed, not saved
    one_minus_s = tl.sigmoid(-g)  # not 1 - s: that cancels for large g
    silu = g * s
    tl.store(DG + offs, (dy * u * s * (1.0 + g * one_minus_s)).to(DG.dtype.element_ty), mask=mask)
    tl.store(DU + offs, (dy * silu).to(DU.dtype.element_ty), mask=mask)


@torch.library.custom_op("tinyllm::swiglu_fwd", mutates_args=())
def _swiglu_fwd_op(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(gate)
    launch_elementwise(_swiglu_fwd_kernel, gate.numel(), gate, up, y)
    return y


@_swiglu_fwd_op.register_fake
def _(gate, up):
    return torch.empty_like(gate)


@torch.library.custom_op("tinyllm::swiglu_bwd", mutates_args=())
def _swiglu_bwd_op(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dg = torch.empty_like(gate)
    du = torch.empty_like(up)
    launch_elementwise(_swiglu_bwd_kernel, gate.numel(), dy, gate, up, dg, du)
    return dg, du


@_swiglu_bwd_op.register_fake
def _(dy, gate, up):
    return torch.empty_like(gate), torch.empty_like(up)


class SwiGLUFunction(torch.autograd.Function):
    """Saves gate and up only; the backward recomputes sigmoid(gate)."""

    @staticmethod
    def forward(ctx, gate, up):
        ctx.save_for_backward(gate, up)
        return torch.ops.tinyllm.swiglu_fwd(gate, up)

    @staticmethod
    def backward(ctx, dy):
        gate, up = ctx.saved_tensors
        return torch.ops.tinyllm.swiglu_bwd(dy.contiguous(), gate, up)


def _check_contract(gate, up) -> None:
    check_elementwise_input("swiglu", "gate", gate)
    check_elementwise_input("swiglu", "up", up)
    if gate.shape != up.shape:
        raise ValueError(f"swiglu: gate and up must have one shape, got {tuple(gate.shape)} and {tuple(up.shape)}")
    if gate.dtype != up.dtype:
        raise ValueError(f"swiglu: gate and up must share a dtype, got {gate.dtype} and {up.dtype}")
    if gate.device != up.device:
        raise ValueError(f"swiglu: gate and up must be on one device, got {gate.device} and {up.device}")


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up, fused; differentiable in both. Triton or `swiglu_ref` (see dispatch)."""
    _check_contract(gate, up)
    if gate.numel() == 0 or kernel_backend(gate) == "reference":
        return swiglu_ref(gate, up)
    return SwiGLUFunction.apply(gate, up)
