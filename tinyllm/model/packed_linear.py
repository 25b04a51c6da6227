"""Linear layers of the batched decode step (TinyLLM.forward_rows, `tinyllm serve`) through
oneDNN, with each weight reordered once into oneDNN's blocked layout, where the whole step in C++
(model/decode_step.py) does not run (its AVX2 kernels missing, a cache it cannot take).

    y = packed_linear(layer, x)     # == F.linear(x, layer.weight, layer.bias), the reference

Used only on models whose weights are final (TinyLLM.pack_for_inference: serve, generate, chat):
fused optimizers change weights without moving their version counters.

Why: a decode step multiplies a handful of rows (padded to multiples of 4, model/gpt.py
ROW_QUANTUM) by every weight. MKL's sgemm, which F.linear calls on the CPU, costs 2.5-4.6x more at
4 rows than oneDNN with a pre-packed weight (measured on this 2-core AMD EPYC, torch 2.13:
benchmarks/README.md, "Serving"), and oneDNN gave each row the same bits for every row count from
1 to 64 (tests/test_packed_linear.py holds that, which is what lets batching never change an
answer). The reordered copy is kept per weight tensor and made again when the weight changes in
place (its version counter moves) or moves; a change through `.data` bypasses the counter, so
call `clear_packed()` after one. float32 CPU tensors only (and only where torch has oneDNN);
everything else is the reference itself.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

BATCH_HINT = 16  # rows oneDNN picks the blocked layout for (any count runs; 4 to 64 measured alike)

# id(weight) -> (weakref to it, (version, address), packed copy); an entry goes with its weight
_packed: dict[int, tuple] = {}


def available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_AVAILABLE = available()
_linear = torch.ops.mkldnn._linear_pointwise.default if _AVAILABLE else None


def clear_packed() -> None:
    """Forget every reordered weight (after changing weights through `.data`)."""
    _packed.clear()


def _pack(w: torch.Tensor) -> tuple:
    wid = id(w)
    ref = weakref.ref(w, lambda _, wid=wid: _packed.pop(wid, None))
    got = _packed[wid] = (
        ref,
        (w._version, w.data_ptr()),
        torch.ops.mkldnn._reorder_linear_weight(w.detach(), BATCH_HINT),
    )
    return got


def plain_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(x): how the model runs a linear layer everywhere but a packed model's decode step."""
    return layer(x)


def packed_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """F.linear(x, layer.weight, layer.bias) for x (..., in_features): through oneDNN with the weight
    packed once where x and the weight are float32 on the CPU (and autograd is off), else F.linear
    itself. Kept lean: it runs ~25 times a decode step, and each microsecond here is ~3% of demo's."""
    w = layer.weight
    if x.dtype is not torch.float32 or not x.is_cpu or torch.is_grad_enabled():
        return F.linear(x, w, layer.bias)
    got = _packed.get(id(w))
    if got is None or got[0]() is not w or got[1] != (w._version, w.data_ptr()):
        if not (_AVAILABLE and w.dtype is torch.float32 and w.is_cpu):
            return F.linear(x, w, layer.bias)
        got = _pack(w)
    return _linear(x, got[2], layer.bias, "none", [], "")  # (..., out_features): oneDNN takes N-d input
