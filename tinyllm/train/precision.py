"""Mixed precision as `tinyllm train` and `tinyllm bench train` run it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import torch


def autocast_setup(dtype: str, device: torch.device) -> tuple[torch.dtype, Callable[[], ContextManager]]:
    """--dtype ('auto', 'float32' or 'bfloat16') -> (the compute dtype, a factory of the context
    each forward pass runs in). auto is bfloat16 autocast on CUDA, float32 elsewhere. On CUDA,
    float32 matmuls (what autocast leaves in float32) may use TF32."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16, lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.float32, contextlib.nullcontext
