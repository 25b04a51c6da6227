from .attention import KVCache, attention_ref
from .config import PRESETS, ModelConfig, preset
from .gpt import IGNORE_INDEX, TinyLLM, resolve_attention

__all__ = ["ModelConfig", "TinyLLM", "KVCache", "PRESETS", "preset", "IGNORE_INDEX", "attention_ref",
           "resolve_attention"]
