"""Fused attention: FlashAttention-2 forward and backward in Triton, with its reference.

    out = flash_attention(q, k, v, causal=True, softmax_scale=None)   # (B, H, T, D) each

Forward (`_attn_fwd`): one program per (query tile of BLOCK_M rows, batch*head). The query
tile stays in SRAM while key/value tiles of BLOCK_N rows stream past; scores are folded
into a running max m_i, a running sum l_i and an unnormalised output acc (online softmax),
so the T x T score matrix never exists. It saves lse = m_i + log2(l_i) per row (base 2,
scores pre-multiplied by softmax_scale * log2(e)) for the backward.

Backward: `_attn_bwd_preprocess` computes delta = rowsum(dO * O); then `_attn_bwd_dkdv`
(one program per key tile; loops over query tiles) and `_attn_bwd_dq` (one program per
query tile; loops over key tiles) recompute P = exp2(S - lse) tile by tile:
    dV = P^T dO,   dP = dO V^T,   dS = P * (dP - delta),   dK = scale * dS^T Q,   dQ = scale * dS K.
Two kernels instead of one with atomics: dQ is written once, deterministic.

Each loop runs in two stages (`tl.static_range(2)`): stage 0 over tiles that need no mask,
stage 1 over the diagonal tiles (causal) and the ragged tail (T not a multiple of the
block). Masks cost only there.

Limits and cautions
- q, k, v: same shape (B, H, T, D), same dtype (float32, float16, bfloat16), same device,
  head dim contiguous (stride 1); other strides are free (the model passes transposed views).
- 16 <= D <= 128. D that is not a power of two (48, 80, 96) is padded to the next power of
  two inside the kernel with masked loads; the padding costs compute, not memory.
- Causal masking is top-left aligned with Tq == Tk (no KV-cache offsets), no dropout, no
  attention bias. Softmax statistics and all accumulation are float32.
- float32 inputs use IEEE float32 dot products unless torch.backends.cuda.matmul.allow_tf32
  is set (then TF32, like PyTorch's own matmul); IEEE fp32 dots run without tensor cores, so
  fp32 is correct but slow, and is autotuned over small tiles only (`_prune_for_fp32`).
- The Triton path is torch.library custom ops (`torch.ops.tinyllm.flash_attention_fwd/_bwd`)
  under `FlashAttentionFunction`: torch.compile keeps them as opaque calls, no graph break.
  (`torch.library.triton_op` would let inductor see inside, but its fake-tensor tracing cannot
  handle interpreted kernels, which CI runs; measured with torch 2.13 / triton 3.9.)
- Block sizes are autotuned on the GPU (key: head dim, causal, dtype and T rounded up to a
  power of two, so a new prompt length does not re-tune). The interpreter uses one small
  fixed configuration.

Triton interpreter (TRITON_INTERPRET=1, triton 3.9, what CI runs) -- measured on this code:
- float32 and float16: tl.dot matches PyTorch (numpy matmul with float32 accumulation);
  float32 -> float16 casts round to nearest even like the GPU. Tested like the GPU path.
- bfloat16: the interpreter stores bf16 as raw uint16, so tl.dot on bf16 operands multiplies
  the bit patterns as integers (garbage) and float32 -> bf16 casts truncate instead of
  rounding to nearest even. The launcher therefore sets UPCAST_DOT in the interpreter for
  bf16: dot operands are cast (exactly) to float32 after being rounded to bf16, which gives
  the same products as the tensor cores. The bf16 interpreter tests check indexing, masking
  and the algorithm with a truncation-sized tolerance; the real bf16 tensor-core path is
  checked by benchmarks/gpu.py on a GPU.
"""

from __future__ import annotations

import math

import torch

from .dispatch import SUPPORTED_DTYPES, device_of, kernel_backend, launchable, tl, triton, use_interpreter

__all__ = ["flash_attention", "flash_attention_ref", "FlashAttentionFunction"]

MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 128

# One fixed configuration for the interpreter: small tiles so that T = 17 already spans two
# tiles, and BLOCK_M != BLOCK_N so the tile-ratio logic is exercised.
_INTERPRET_FWD = dict(BLOCK_M=32, BLOCK_N=16)
_INTERPRET_DKDV = dict(BLOCK_M=16, BLOCK_N=32)
_INTERPRET_DQ = dict(BLOCK_M=32, BLOCK_N=16)
_PREPROCESS_BLOCK_M = 64


def flash_attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, softmax_scale: float | None = None
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v, written out: the spec and the CPU fallback.

    Materialises the (B, H, T, T) scores; the softmax runs in at least float32.
    """
    T, D = q.shape[-2], q.shape[-1]
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(D)
    s = (q @ k.transpose(-2, -1)) * scale  # (B, H, T, T)
    if causal:
        later = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)  # key after query
        s = s.masked_fill(later, float("-inf"))
    p = torch.softmax(s.to(torch.promote_types(s.dtype, torch.float32)), dim=-1).to(q.dtype)
    return p @ v  # (B, H, T, D)


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


def _fwd_configs():
    # BLOCK_M must be a multiple of BLOCK_N (the causal diagonal starts on a BLOCK_N edge).
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [
            (128, 64, 8, 3),
            (128, 64, 4, 3),
            (128, 128, 8, 3),
            (128, 32, 4, 4),
            (64, 64, 4, 3),
            (64, 32, 4, 4),
        ]
    ]


def _dkdv_configs():
    # BLOCK_N (keys) must be a multiple of BLOCK_M (queries).
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [(32, 128, 8, 3), (32, 128, 4, 3), (64, 128, 8, 2), (32, 64, 4, 3), (16, 64, 4, 4)]
    ]


def _dq_configs():
    # BLOCK_M (queries) must be a multiple of BLOCK_N (keys).
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [(128, 32, 8, 3), (128, 32, 4, 3), (128, 64, 8, 2), (64, 32, 4, 3), (64, 16, 4, 4)]
    ]


_TUNE_KEY = ["SEQ_BUCKET", "HEAD_DIM", "CAUSAL"]  # (+ the tensors' dtypes, added by triton)


def _prune_for_fp32(configs, named_args, **kwargs):
    """float32 tiles are twice the bytes and IEEE fp32 dots run without tensor cores: big tiles
    overflow shared memory and take a minute each to compile. Keep the small ones."""
    if named_args["Q"].dtype != torch.float32:
        return configs
    small = [c for c in configs if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 64 * 32]
    return small or configs[-1:]


_PRUNE = {"early_config_prune": _prune_for_fp32}


@triton.autotune(configs=_fwd_configs(), key=_TUNE_KEY, prune_configs_by=_PRUNE)
@triton.jit
def _attn_fwd(
    Q,
    K,
    V,
    Out,
    LSE,
    softmax_scale,
    stride_qz,
    stride_qh,
    stride_qm,
    stride_kz,
    stride_kh,
    stride_kn,
    stride_vz,
    stride_vh,
    stride_vn,
    stride_oz,
    stride_oh,
    stride_om,
    H,
    T,
    SEQ_BUCKET,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_z = (pid_bh // H).to(tl.int64)
    off_h = (pid_bh % H).to(tl.int64)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_vz + off_h * stride_vh
    o_base = Out + off_z * stride_oz + off_h * stride_oh

    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM  # head dim padded to a power of two
    m_ok = offs_m < T

    # The query tile is loaded once and stays in SRAM for the whole loop.
    q = tl.load(q_base + offs_m[:, None] * stride_qm + offs_d[None, :], mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST_DOT:
        q = q.to(tl.float32)
    qk_scale = softmax_scale * 1.4426950408889634  # log2(e): exp2 instead of exp
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    if CAUSAL:  # tiles left of the diagonal need no mask; the diagonal tiles do
        full_end = start_m
        masked_end = tl.minimum(start_m + BLOCK_M, T)
    else:  # every tile but the ragged tail is full
        full_end = (T // BLOCK_N) * BLOCK_N
        masked_end = T
    for STAGE in tl.static_range(2):
        if STAGE == 0:
            lo = 0
            hi = full_end
        else:
            lo = full_end
            hi = masked_end
        for start_n in range(lo, hi, BLOCK_N):
            offs_kn = start_n + offs_n
            kv_mask = (offs_kn[:, None] < T) & d_ok[None, :]
            kT = tl.load(
                k_base + offs_kn[None, :] * stride_kn + offs_d[:, None],
                mask=(offs_kn[None, :] < T) & d_ok[:, None],
                other=0.0,
            )  # (BLOCK_D, BLOCK_N)
            if UPCAST_DOT:
                kT = kT.to(tl.float32)
            qk = tl.dot(q, kT, input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), fp32
            if STAGE == 1:
                keep = offs_kn[None, :] < T
                if CAUSAL:
                    keep = keep & (offs_m[:, None] >= offs_kn[None, :])
                qk = tl.where(keep, qk, float("-inf"))
            # Online softmax: rescale what was accumulated under the old max.
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.math.exp2(qk - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(v_base + offs_kn[:, None] * stride_vn + offs_d[None, :], mask=kv_mask, other=0.0)
            p_lo = p.to(V.dtype.element_ty)  # P in the input dtype for the tensor-core dot
            if UPCAST_DOT:
                v = v.to(tl.float32)
                p_lo = p_lo.to(tl.float32)
            acc = acc * alpha[:, None]
            acc = tl.dot(p_lo, v, acc, input_precision=DOT_PRECISION)
            m_i = m_new

    acc = acc / l_i[:, None]
    tl.store(LSE + pid_bh.to(tl.int64) * T + offs_m, m_i + tl.math.log2(l_i), mask=m_ok)
    tl.store(
        o_base + offs_m[:, None] * stride_om + offs_d[None, :],
        acc.to(Out.dtype.element_ty),
        mask=m_ok[:, None] & d_ok[None, :],
    )


@triton.jit
def _attn_bwd_preprocess(
    O,
    DO,
    Delta,
    stride_oz,
    stride_oh,
    stride_om,
    stride_doz,
    stride_doh,
    stride_dom,
    H,
    T,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    # delta_i = sum_d dO_id * O_id: the row term of the softmax derivative.
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_z = (pid_bh // H).to(tl.int64)
    off_h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_m[:, None] < T) & (offs_d[None, :] < HEAD_DIM)
    o = tl.load(
        O + off_z * stride_oz + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :], mask=mask, other=0.0
    ).to(tl.float32)
    do = tl.load(
        DO + off_z * stride_doz + off_h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    tl.store(Delta + pid_bh.to(tl.int64) * T + offs_m, tl.sum(o * do, axis=1), mask=offs_m < T)


@triton.autotune(configs=_dkdv_configs(), key=_TUNE_KEY, prune_configs_by=_PRUNE)
@triton.jit
def _attn_bwd_dkdv(
    Q,
    K,
    V,
    DO,
    LSE,
    Delta,
    DK,
    DV,
    softmax_scale,
    stride_qz,
    stride_qh,
    stride_qm,
    stride_kz,
    stride_kh,
    stride_kn,
    stride_vz,
    stride_vh,
    stride_vn,
    stride_doz,
    stride_doh,
    stride_dom,
    stride_dkz,
    stride_dkh,
    stride_dkn,
    H,
    T,
    SEQ_BUCKET,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # One key tile; dK and dV accumulate in SRAM over all query tiles that see it.
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_z = (pid_bh // H).to(tl.int64)
    off_h = (pid_bh % H).to(tl.int64)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    do_base = DO + off_z * stride_doz + off_h * stride_doh
    row_base = pid_bh.to(tl.int64) * T  # LSE and Delta are (B*H, T)

    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m0 = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    n_ok = offs_n < T
    kv_mask = n_ok[:, None] & d_ok[None, :]
    k = tl.load(
        K + off_z * stride_kz + off_h * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
        mask=kv_mask,
        other=0.0,
    )
    v = tl.load(
        V + off_z * stride_vz + off_h * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :],
        mask=kv_mask,
        other=0.0,
    )
    if UPCAST_DOT:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    qk_scale = softmax_scale * 1.4426950408889634

    if CAUSAL:  # queries before start_n see none of these keys
        full_lo = start_n + BLOCK_N
        full_hi = T
        masked_lo = start_n
        masked_hi = tl.minimum(start_n + BLOCK_N, T)
    else:
        full_lo = 0
        full_hi = (T // BLOCK_M) * BLOCK_M
        masked_lo = full_hi
        masked_hi = T
    for STAGE in tl.static_range(2):
        if STAGE == 0:
            lo = full_lo
            hi = full_hi
        else:
            lo = masked_lo
            hi = masked_hi
        for start_m in range(lo, hi, BLOCK_M):
            # Rows past T load q = dO = lse = delta = 0, so P = 1 and dS = 0 there: they add
            # nothing to dK or dV, and the causal stage-0 tail needs no mask.
            offs_m = start_m + offs_m0
            m_ok = offs_m < T
            qT = tl.load(
                q_base + offs_m[None, :] * stride_qm + offs_d[:, None], mask=m_ok[None, :] & d_ok[:, None], other=0.0
            )  # (BLOCK_D, BLOCK_M)
            do = tl.load(
                do_base + offs_m[:, None] * stride_dom + offs_d[None, :], mask=m_ok[:, None] & d_ok[None, :], other=0.0
            )  # (BLOCK_M, BLOCK_D)
            lse = tl.load(LSE + row_base + offs_m, mask=m_ok, other=0.0)
            delta = tl.load(Delta + row_base + offs_m, mask=m_ok, other=0.0)
            if UPCAST_DOT:
                qT = qT.to(tl.float32)
                do = do.to(tl.float32)
            pT = tl.math.exp2(
                tl.dot(k, qT, input_precision=DOT_PRECISION) * qk_scale - lse[None, :]
            )  # (BLOCK_N, BLOCK_M)
            if STAGE == 1:
                keep = m_ok[None, :] & n_ok[:, None]
                if CAUSAL:
                    keep = keep & (offs_m[None, :] >= offs_n[:, None])
                pT = tl.where(keep, pT, 0.0)
            pT_lo = pT.to(DO.dtype.element_ty)
            if UPCAST_DOT:
                pT_lo = pT_lo.to(tl.float32)
            dv = tl.dot(pT_lo, do, dv, input_precision=DOT_PRECISION)
            dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # (BLOCK_N, BLOCK_M)
            dsT = pT * (dpT - delta[None, :])
            dsT_lo = dsT.to(Q.dtype.element_ty)
            if UPCAST_DOT:
                dsT_lo = dsT_lo.to(tl.float32)
            dk = tl.dot(dsT_lo, tl.trans(qT), dk, input_precision=DOT_PRECISION)

    dk = dk * softmax_scale
    out_offs = off_z * stride_dkz + off_h * stride_dkh + offs_n[:, None] * stride_dkn + offs_d[None, :]
    tl.store(DK + out_offs, dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + out_offs, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.autotune(configs=_dq_configs(), key=_TUNE_KEY, prune_configs_by=_PRUNE)
@triton.jit
def _attn_bwd_dq(
    Q,
    K,
    V,
    DO,
    LSE,
    Delta,
    DQ,
    softmax_scale,
    stride_qz,
    stride_qh,
    stride_qm,
    stride_kz,
    stride_kh,
    stride_kn,
    stride_vz,
    stride_vh,
    stride_vn,
    stride_doz,
    stride_doh,
    stride_dom,
    stride_dqz,
    stride_dqh,
    stride_dqm,
    H,
    T,
    SEQ_BUCKET,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # One query tile; dQ accumulates in SRAM over the key tiles it sees.
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_z = (pid_bh // H).to(tl.int64)
    off_h = (pid_bh % H).to(tl.int64)
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_vz + off_h * stride_vh
    row_base = pid_bh.to(tl.int64) * T

    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n0 = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    m_ok = offs_m < T
    qd_mask = m_ok[:, None] & d_ok[None, :]
    q = tl.load(
        Q + off_z * stride_qz + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
        mask=qd_mask,
        other=0.0,
    )
    do = tl.load(
        DO + off_z * stride_doz + off_h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
        mask=qd_mask,
        other=0.0,
    )
    lse = tl.load(LSE + row_base + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(Delta + row_base + offs_m, mask=m_ok, other=0.0)
    if UPCAST_DOT:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    qk_scale = softmax_scale * 1.4426950408889634

    if CAUSAL:
        full_end = start_m
        masked_end = tl.minimum(start_m + BLOCK_M, T)
    else:  # the key tail must be masked: P = exp2(0 - lse) could overflow there
        full_end = (T // BLOCK_N) * BLOCK_N
        masked_end = T
    for STAGE in tl.static_range(2):
        if STAGE == 0:
            lo = 0
            hi = full_end
        else:
            lo = full_end
            hi = masked_end
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + offs_n0
            kvT_mask = (offs_n[None, :] < T) & d_ok[:, None]
            kT = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None], mask=kvT_mask, other=0.0)
            vT = tl.load(v_base + offs_n[None, :] * stride_vn + offs_d[:, None], mask=kvT_mask, other=0.0)
            if UPCAST_DOT:
                kT = kT.to(tl.float32)
                vT = vT.to(tl.float32)
            p = tl.math.exp2(
                tl.dot(q, kT, input_precision=DOT_PRECISION) * qk_scale - lse[:, None]
            )  # (BLOCK_M, BLOCK_N)
            if STAGE == 1:
                keep = offs_n[None, :] < T
                if CAUSAL:
                    keep = keep & (offs_m[:, None] >= offs_n[None, :])
                p = tl.where(keep, p, 0.0)
            dp = tl.dot(do, vT, input_precision=DOT_PRECISION)
            ds = p * (dp - delta[:, None])
            ds_lo = ds.to(K.dtype.element_ty)
            if UPCAST_DOT:
                ds_lo = ds_lo.to(tl.float32)
            dq = tl.dot(ds_lo, tl.trans(kT), dq, input_precision=DOT_PRECISION)

    dq = dq * softmax_scale
    tl.store(
        DQ + off_z * stride_dqz + off_h * stride_dqh + offs_m[:, None] * stride_dqm + offs_d[None, :],
        dq.to(DQ.dtype.element_ty),
        mask=qd_mask,
    )


# --------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------


def _kernel_flags(q: torch.Tensor) -> dict:
    interpret = use_interpreter()
    D = q.shape[-1]
    fp32_precision = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
    return dict(
        HEAD_DIM=D,
        BLOCK_D=max(16, triton.next_power_of_2(D)),
        UPCAST_DOT=interpret and q.dtype == torch.bfloat16,  # see module docstring
        DOT_PRECISION=fp32_precision if q.dtype == torch.float32 else "ieee",
    )


def _seq_bucket(T: int) -> int:
    return min(triton.next_power_of_2(T), 16384)


def _flash_attention_fwd(q, k, v, causal: bool, softmax_scale: float):
    B, H, T, D = q.shape
    out = torch.empty((B, H, T, D), dtype=q.dtype, device=q.device)
    lse = torch.empty((B, H, T), dtype=torch.float32, device=q.device)  # base-2, scaled
    flags = _kernel_flags(q)
    args = (
        q,
        k,
        v,
        out,
        lse,
        softmax_scale,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        H,
        T,
        _seq_bucket(T),
    )
    kernel = launchable(_attn_fwd)
    if use_interpreter():
        grid = (triton.cdiv(T, _INTERPRET_FWD["BLOCK_M"]), B * H)
        kernel[grid](*args, CAUSAL=causal, **flags, **_INTERPRET_FWD)
    else:
        kernel[lambda META: (triton.cdiv(T, META["BLOCK_M"]), B * H)](*args, CAUSAL=causal, **flags)
    return out, lse


def _flash_attention_bwd(do, q, k, v, out, lse, causal: bool, softmax_scale: float):
    B, H, T, D = q.shape
    interpret = use_interpreter()
    flags = _kernel_flags(q)
    delta = torch.empty((B, H, T), dtype=torch.float32, device=q.device)
    pre = launchable(_attn_bwd_preprocess)
    pre[(triton.cdiv(T, _PREPROCESS_BLOCK_M), B * H)](
        out,
        do,
        delta,
        out.stride(0),
        out.stride(1),
        out.stride(2),
        do.stride(0),
        do.stride(1),
        do.stride(2),
        H,
        T,
        HEAD_DIM=D,
        BLOCK_D=flags["BLOCK_D"],
        BLOCK_M=_PREPROCESS_BLOCK_M,
    )

    dq = torch.empty((B, H, T, D), dtype=q.dtype, device=q.device)
    dk = torch.empty_like(dq)
    dv = torch.empty_like(dq)
    qkv_do_strides = (
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        do.stride(0),
        do.stride(1),
        do.stride(2),
        dq.stride(0),
        dq.stride(1),
        dq.stride(2),
    )  # dq, dk, dv share strides
    tail = (H, T, _seq_bucket(T))
    dkdv_kernel = launchable(_attn_bwd_dkdv)
    dq_kernel = launchable(_attn_bwd_dq)
    dkdv_args = (q, k, v, do, lse, delta, dk, dv, softmax_scale, *qkv_do_strides, *tail)
    dq_args = (q, k, v, do, lse, delta, dq, softmax_scale, *qkv_do_strides, *tail)
    if interpret:
        dkdv_kernel[(triton.cdiv(T, _INTERPRET_DKDV["BLOCK_N"]), B * H)](
            *dkdv_args, CAUSAL=causal, **flags, **_INTERPRET_DKDV
        )
        dq_kernel[(triton.cdiv(T, _INTERPRET_DQ["BLOCK_M"]), B * H)](*dq_args, CAUSAL=causal, **flags, **_INTERPRET_DQ)
    else:
        dkdv_kernel[lambda META: (triton.cdiv(T, META["BLOCK_N"]), B * H)](*dkdv_args, CAUSAL=causal, **flags)
        dq_kernel[lambda META: (triton.cdiv(T, META["BLOCK_M"]), B * H)](*dq_args, CAUSAL=causal, **flags)
    return dq, dk, dv


# torch.library ops: opaque to torch.compile (no graph break), traced through their fakes.
@torch.library.custom_op("tinyllm::flash_attention_fwd", mutates_args=())
def _flash_attention_fwd_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, softmax_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    with device_of(q):
        return _flash_attention_fwd(q, k, v, causal, softmax_scale)


@_flash_attention_fwd_op.register_fake
def _(q, k, v, causal, softmax_scale):
    B, H, T, D = q.shape
    return q.new_empty((B, H, T, D)), q.new_empty((B, H, T), dtype=torch.float32)


@torch.library.custom_op("tinyllm::flash_attention_bwd", mutates_args=())
def _flash_attention_bwd_op(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool,
    softmax_scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with device_of(q):
        return _flash_attention_bwd(do, q, k, v, out, lse, causal, softmax_scale)


@_flash_attention_bwd_op.register_fake
def _(do, q, k, v, out, lse, causal, softmax_scale):
    return q.new_empty(q.shape), q.new_empty(q.shape), q.new_empty(q.shape)


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd for the Triton path: saves q, k, v, out and the (B, H, T) log-sum-exp, not
    the probabilities; the backward recomputes them tile by tile."""

    @staticmethod
    def forward(ctx, q, k, v, causal, softmax_scale):
        out, lse = torch.ops.tinyllm.flash_attention_fwd(q, k, v, causal, softmax_scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal = causal
        ctx.softmax_scale = softmax_scale
        return out

    @staticmethod
    def backward(ctx, do):
        q, k, v, out, lse = ctx.saved_tensors
        if do.stride(-1) != 1:
            do = do.contiguous()
        dq, dk, dv = torch.ops.tinyllm.flash_attention_bwd(do, q, k, v, out, lse, ctx.causal, ctx.softmax_scale)
        return dq, dk, dv, None, None


def _check_contract(q, k, v, softmax_scale):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"flash_attention: {name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 4:
        raise ValueError(f"flash_attention: q must be 4-D (B, H, T, D), got shape {tuple(q.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            "flash_attention: q, k, v must have the same shape (B, H, T, D), got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if not (k.device == q.device == v.device):
        raise ValueError(f"flash_attention: q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if not (k.dtype == q.dtype == v.dtype):
        raise ValueError(f"flash_attention: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"flash_attention: dtype must be float32, float16 or bfloat16, got {q.dtype}")
    D = q.shape[-1]
    if not MIN_HEAD_DIM <= D <= MAX_HEAD_DIM:
        raise ValueError(f"flash_attention: head dim D must be in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}], got {D}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(-1) != 1:  # D >= 16 here, so a stride of the head dim matters
            raise ValueError(
                f"flash_attention: {name} must be contiguous in the head dim (stride 1), "
                f"got strides {t.stride()}; call .contiguous() first"
            )
    if softmax_scale is not None and not (isinstance(softmax_scale, (int, float)) and softmax_scale > 0):
        raise ValueError(f"flash_attention: softmax_scale must be a positive float or None, got {softmax_scale!r}")


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, softmax_scale: float | None = None
) -> torch.Tensor:
    """Scaled dot-product attention, q, k, v: (B, H, T, D) -> (B, H, T, D), differentiable.

    Triton on CUDA (and on CPU under TRITON_INTERPRET=1), `flash_attention_ref` elsewhere;
    see tinyllm.kernels.dispatch. softmax_scale defaults to 1/sqrt(D).
    """
    _check_contract(q, k, v, softmax_scale)
    scale = float(softmax_scale) if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if q.numel() == 0 or kernel_backend(q) == "reference":
        return flash_attention_ref(q, k, v, causal=causal, softmax_scale=scale)
    return FlashAttentionFunction.apply(q, k, v, bool(causal), scale)
