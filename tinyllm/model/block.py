"""One transformer block: pre-norm attention and feed-forward, each added to the residual stream."""

from __future__ import annotations

from torch import nn

from .attention import CausalSelfAttention
from .config import ModelConfig
from .ffn import FeedForward


class Block(nn.Module):
    """Pre-norm: x + attn(LN(x)), then x + ffn(LN(x))."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: str):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer_idx, backend)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.ffn = FeedForward(cfg, fused=backend == "triton")

    def forward(self, x, rotary=None, cache=None, start_pos=0):
        x = x + self.attn(self.ln1(x), rotary, cache, start_pos)
        return x + self.ffn(self.ln2(x))
