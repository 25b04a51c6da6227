"""tinyllm: a from-scratch GPT toolkit (C++ BPE, Triton kernels, torchrun trainer)."""

from .errors import TinyLLMError
from .model import ModelConfig, TinyLLM
from .train.checkpoint import load_checkpoint

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TinyLLM", "load_checkpoint", "TinyLLMError", "__version__"]
