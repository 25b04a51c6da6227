"""Model configuration and TinyLLM's size presets."""

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
    """Attention backend: 'reference' (explicit softmax, the spec), 'sdpa' (torch), 'triton' (tinyllm.kernels), or 'auto' (sdpa: measured faster than triton in whole-model training on an H200)."""
    bias: bool = True
    """Biases in Linear layers and LayerNorms."""

    def __post_init__(self):
        for name in SHAPE_FIELDS:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise TinyLLMError(f"model config: {name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise TinyLLMError(
                f"model config: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.pos_emb == "rope" and (self.d_model // self.n_heads) % 2:
            raise TinyLLMError(f"model config: rope needs an even head size, got {self.d_model // self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise TinyLLMError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in (("pos_emb", POS_EMBS), ("activation", ACTIVATIONS), ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                raise TinyLLMError(f"model config: {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# TinyLLM's table (tiny/small/medium) plus `demo`, sized to train in ~3 minutes on 2 CPU cores.
# `params` is the approximate parameter count the table promises (tested within 10%);
# `train` holds training defaults the preset brings (flags still override them).
PRESETS: dict[str, dict] = {
    "demo": dict(vocab_size=2048, context_length=128, d_model=192, n_layers=4, n_heads=6, d_ff=512, dropout=0.0,
                 train=dict(batch_size=16, max_iters=800, warmup_iters=50, max_lr=2e-3, eval_interval=100,
                            eval_iters=10, checkpoint_interval=200)),
    "tiny": dict(vocab_size=10000, context_length=256, d_model=384, n_layers=6, n_heads=6, d_ff=512, params=10e6),
    "small": dict(vocab_size=10000, context_length=512, d_model=512, n_layers=8, n_heads=8, d_ff=1024, params=22e6),
    "medium": dict(vocab_size=10000, context_length=1024, d_model=768, n_layers=12, n_heads=12, d_ff=1536, params=65e6),
}


def preset(name: str, **overrides) -> ModelConfig:
    """ModelConfig for a named preset, with field overrides."""
    if name not in PRESETS:
        raise TinyLLMError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    fields = {k: v for k, v in PRESETS[name].items() if k not in ("params", "train")}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig(**fields)
