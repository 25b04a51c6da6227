"""tinyllm: a from-scratch GPT toolkit (C++ BPE, Triton kernels, torchrun trainer).

The top-level names load lazily: `import tinyllm.tokenizer` must not pay for
importing torch (the tokenizer trainer's memory budget counts it).
"""

import importlib

from .errors import TinyLLMError

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TinyLLM", "load_checkpoint", "Tokenizer", "TinyLLMError", "__version__"]

_LAZY = {
    "ModelConfig": ".model",
    "TinyLLM": ".model",
    "load_checkpoint": ".train.checkpoint",
    "Tokenizer": ".tokenizer",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tinyllm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
