"""Model configuration: the shape and kind of a decoder-only GPT (presets: train/presets.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import TinyLLMError

POS_EMBS = ("learned", "sinusoidal", "rope")
ACTIVATIONS = ("gelu", "relu", "silu", "swiglu")
ATTENTIONS = ("auto", "reference", "sdpa", "triton")
# the fields that fix the weights' shapes (a checkpoint's, when fine-tuning or resuming)
SHAPE_FIELDS = ("vocab_size", "context_length", "d_model", "n_layers", "n_heads", "d_ff")


@dataclass
class ModelConfig:
    """Shape of a decoder-only GPT. Field names follow TinyLLM's."""

    vocab_size: int = 10000
    """Number of token ids, special tokens included."""
    context_length: int = 256
    """Longest sequence the model attends over (and the size of a learned position table)."""
    d_model: int = 384
    """Width of the residual stream."""
    n_layers: int = 6
    """Number of transformer blocks."""
    n_heads: int = 6
    """Attention heads per block; d_model must be divisible by it."""
    d_ff: int = 512
    """Hidden width of the feed-forward block (SwiGLU uses 2/3 of it per projection so the parameter count matches)."""
    dropout: float = 0.1
    """Dropout on embeddings, attention probabilities and residual branches (training only)."""
    pos_emb: str = "learned"
    """Positions: 'learned' (a table), 'sinusoidal' (fixed, added) or 'rope' (rotary, applied to q and k)."""
    activation: str = "gelu"
    """Feed-forward activation: 'gelu', 'relu', 'silu' or 'swiglu'."""
    attention: str = "auto"
    """Attention backend: 'reference' (explicit softmax, the spec), 'sdpa' (torch), 'triton' (tinyllm.kernels' flash attention and fused activations; no attention-probability dropout), or 'auto' (sdpa; why: benchmarks/README_kernels.md)."""
    bias: bool = True
    """Biases in Linear layers and LayerNorms."""

    def __post_init__(self):
        for name in SHAPE_FIELDS:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise TinyLLMError(f"model config: {name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise TinyLLMError(f"model config: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.pos_emb == "rope" and (self.d_model // self.n_heads) % 2:
            raise TinyLLMError(f"model config: rope needs an even head size, got {self.d_model // self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise TinyLLMError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in (("pos_emb", POS_EMBS), ("activation", ACTIVATIONS), ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                raise TinyLLMError(
                    f"model config: {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
