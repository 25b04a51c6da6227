"""tinyllm.kernels: Triton kernels with their PyTorch references beside them.

    from tinyllm.kernels import flash_attention, gelu, bias_gelu, swiglu, kernel_backend

Each op checks its contract, then runs the Triton kernel (CUDA tensors, or CPU tensors
under TRITON_INTERPRET=1) or its `<op>_ref` (everything else); `kernel_backend(t)` says
which, and TINYLLM_KERNELS=reference|triton forces one. Importing never fails for want of
triton: without it every op runs its reference. The Triton paths are torch.library custom
ops (namespace `tinyllm`), so torch.compile traces them without a graph break.
"""

from .dispatch import HAS_TRITON, kernel_backend
from .flash_attention import FlashAttentionFunction, flash_attention, flash_attention_ref
from .gelu import BiasGeluFunction, GeluFunction, bias_gelu, bias_gelu_ref, gelu, gelu_ref
from .swiglu import SwiGLUFunction, swiglu, swiglu_ref

__all__ = [
    "flash_attention",
    "flash_attention_ref",
    "FlashAttentionFunction",
    "gelu",
    "gelu_ref",
    "GeluFunction",
    "bias_gelu",
    "bias_gelu_ref",
    "BiasGeluFunction",
    "swiglu",
    "swiglu_ref",
    "SwiGLUFunction",
    "kernel_backend",
    "HAS_TRITON",
]
