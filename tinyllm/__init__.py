"""tinyllm: a from-scratch GPT toolkit (C++ BPE, Triton kernels, torchrun trainer).

The top-level names load lazily, and so do the sub-packages' (`lazy_exports`):
`import tinyllm.tokenizer`, `tinyllm --help` and `tinyllm tokenizer ...` must not pay
for importing torch (the tokenizer trainer's memory budget counts it).
"""

import importlib
import os

from .errors import TinyLLMError

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TinyLLM", "load_checkpoint", "Tokenizer", "TinyLLMError", "__version__"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def lazy_exports(package: str, names: dict[str, str]):
    """-> (__getattr__, __dir__) for a package whose public names {name: ".module"} are imported
    on first use, so importing the package (or one light module in it) stays cheap."""
    module = importlib.import_module(package)

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            setattr(module, name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(module)) | set(names))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ModelConfig": ".model.config",
        "TinyLLM": ".model.gpt",
        "load_checkpoint": ".train.checkpoint",
        "Tokenizer": ".tokenizer",
    },
)
