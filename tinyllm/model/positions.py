"""Position information: learned table, fixed sinusoids, or rotary (RoPE)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(n_pos: int, d_model: int) -> torch.Tensor:
    """The fixed table of 'Attention Is All You Need': (n_pos, d_model).

    PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)).
    """
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(n_pos, d_model)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq[: d_model // 2])
    return table


class Rotary(nn.Module):
    """Rotary position embedding: rotate each (even, odd) pair of q and k channels by an
    angle proportional to the position, so q.k depends only on the relative offset."""

    def __init__(self, head_dim: int, max_pos: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (D/2,)
        angles = torch.outer(torch.arange(max_pos, dtype=torch.float32), inv_freq)  # (P, D/2)
        # not saved in checkpoints: derived from the config
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        """x: (B, H, T, D) -> same shape, rotated for positions start_pos .. start_pos+T-1."""
        T = x.shape[-2]
        cos = self.cos[start_pos : start_pos + T].to(x.dtype)  # (T, D/2)
        sin = self.sin[start_pos : start_pos + T].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, T, D/2) each
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, T, D/2, 2)
        return out.flatten(-2)

    def at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: (B, H, 1, D), row b at position positions[b] (a (B,) tensor) -> same shape. The same
        elementwise ops as forward(), so a row gets the very bits forward(x[b:b+1], positions[b]) gives."""
        cos = self.cos[positions][:, None, None, :].to(x.dtype)  # (B, 1, 1, D/2)
        sin = self.sin[positions][:, None, None, :].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, 1, D/2) each
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, 1, D/2, 2)
        return out.flatten(-2)
