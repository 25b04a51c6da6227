"""The model: config, the GPT, attention backends, feed-forward, positions, fused head + loss.
Names load lazily (tinyllm.lazy_exports): the config alone does not import torch."""

from .. import lazy_exports

__all__ = ["ModelConfig", "TinyLLM", "KVCache", "IGNORE_INDEX", "attention_ref", "resolve_attention"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ModelConfig": ".config",
        "TinyLLM": ".gpt",
        "resolve_attention": ".attention",
        "KVCache": ".attention",
        "attention_ref": ".attention",
        "IGNORE_INDEX": ".loss",
    },
)
