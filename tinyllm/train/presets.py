"""Named runs: TinyLLM's size table (tiny / small / medium) plus `demo`.

A preset is a model shape and the training defaults that suit it; flags override both
(`resolve_run` in run_config.py applies them). `demo` is sized to train in about three
minutes on 2 CPU cores and still get below the unigram entropy of its val tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import TinyLLMError
from ..model.config import ModelConfig
from .config import TrainConfig

DEFAULT_PRESET = "tiny"


@dataclass(frozen=True)
class Preset:
    """A named model shape with its training defaults."""

    name: str
    """What `--preset` calls it."""
    model: ModelConfig
    """The model it trains (flags override single fields)."""
    train: Mapping[str, Any] = field(default_factory=dict)
    """TrainConfig fields this preset sets differently from TrainConfig's defaults (flags override them)."""

    def __post_init__(self):
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.train) - known)
        if unknown:
            raise TypeError(f"preset {self.name}: {', '.join(unknown)} are not TrainConfig fields")
        TrainConfig(**self.train)  # the values themselves must be valid
        object.__setattr__(self, "train", MappingProxyType(dict(self.train)))


def _shape(vocab, context, d_model, layers, heads, d_ff, **kw) -> ModelConfig:
    return ModelConfig(
        vocab_size=vocab, context_length=context, d_model=d_model, n_layers=layers, n_heads=heads, d_ff=d_ff, **kw
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "demo",
            _shape(2048, 128, 192, 4, 6, 512, dropout=0.0),
            dict(
                batch_size=16,
                max_iters=800,
                warmup_iters=50,
                max_lr=2e-3,
                eval_interval=100,
                eval_iters=10,
                checkpoint_interval=200,
            ),
        ),
        Preset("tiny", _shape(10000, 256, 384, 6, 6, 512)),
        Preset("small", _shape(10000, 512, 512, 8, 8, 1024)),
        Preset("medium", _shape(10000, 1024, 768, 12, 12, 1536)),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise TinyLLMError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def preset(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of a named preset, with field overrides (None = keep the preset's)."""
    base = get_preset(name).model.to_dict()
    base.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig(**base)
