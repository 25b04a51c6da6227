"""Position-wise feed-forward block: Linear -> activation -> Linear, or SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .packed_linear import plain_linear


def swiglu_hidden(d_ff: int) -> int:
    """SwiGLU has three matrices instead of two: 2/3 of d_ff each keeps the parameter count."""
    return max(1, round(2 * d_ff / 3))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig, fused: bool = False):
        super().__init__()
        self.activation = cfg.activation
        self.fused = fused  # use tinyllm.kernels' Triton activations (set with attention='triton')
        hidden = swiglu_hidden(cfg.d_ff) if cfg.activation == "swiglu" else cfg.d_ff
        if cfg.activation == "swiglu":
            self.gate = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        # fc's bias is applied inside the fused bias_gelu kernel on the fused path
        self.fc = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, linear=None) -> torch.Tensor:
        """linear(layer, x): how each nn.Linear runs (forward_rows passes model/packed_linear.py's)."""
        linear = linear or plain_linear
        if self.activation == "swiglu":
            g, u = linear(self.gate, x), linear(self.fc, x)
            if self.fused:
                from ..kernels import swiglu

                h = swiglu(g, u)
            else:
                h = F.silu(g) * u
        elif self.activation == "gelu":
            if self.fused and self.fc.bias is not None:
                from ..kernels import bias_gelu

                h = bias_gelu(F.linear(x, self.fc.weight), self.fc.bias, approximate="tanh")
            else:
                h = F.gelu(linear(self.fc, x), approximate="tanh")
        elif self.activation == "relu":
            h = F.relu(linear(self.fc, x))
        else:
            h = F.silu(linear(self.fc, x))
        return self.drop(linear(self.proj, h))
