"""Which path a tensor takes: the Triton kernels or the PyTorch reference.

Rules, checked at every call, in this order:

1. `TINYLLM_KERNELS=reference` -> reference. `TINYLLM_KERNELS=triton` -> Triton, or an error
   that says why it cannot run. Unset, empty or `auto` -> the rules below.
2. triton not importable -> reference (never an ImportError at `import tinyllm.kernels`).
3. CUDA tensor -> Triton (compiled and autotuned; run by the interpreter when it is active).
4. CPU tensor with Triton's interpreter active -> Triton, run by the interpreter: how CI
   tests the kernels without a GPU. Other tensors (CPU otherwise, MPS, meta) -> reference.

When the interpreter is active: triton decides interpret-or-compile once per function, when it
is decorated with `@triton.jit` -- its own `tl.max`, `tl.sum`, `tl.sigmoid` are decorated
when triton is first imported, ours when this package is. So `TRITON_INTERPRET=1` must be
in the environment before anything imports triton; note that `import torch._dynamo` (and
so torch.compile) imports it. `INTERPRETED` records whether that happened. Setting
TRITON_INTERPRET=1 too late is an error at the first op on a CPU tensor, not a silent
fallback to the reference.
"""

from __future__ import annotations

import contextlib
import os

import torch

try:  # triton is optional: Linux-only wheel, and absent on macOS / Windows
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    HAS_TRITON, TRITON_IMPORT_ERROR = True, None
except (ImportError, OSError, RuntimeError) as e:  # pragma: no cover - exercised in a subprocess test
    HAS_TRITON, TRITON_IMPORT_ERROR = False, e

    class _MissingTriton:
        """Stands in for `triton` and `triton.language` so the kernel definitions still
        import without triton; they are never launched (dispatch returns 'reference')."""

        constexpr = object  # only used as an annotation

        @staticmethod
        def jit(fn=None, **kwargs):
            return fn if fn is not None else (lambda f: f)

        @staticmethod
        def autotune(*args, **kwargs):
            return lambda f: f

        @staticmethod
        def Config(*args, **kwargs):
            return None

    triton = tl = _MissingTriton()

__all__ = [
    "HAS_TRITON",
    "INTERPRETED",
    "SUPPORTED_DTYPES",
    "kernel_backend",
    "use_interpreter",
    "launchable",
    "device_of",
    "check_elementwise_input",
    "launch_elementwise",
    "ELEMENTWISE_BLOCK_SIZE",
    "ELEMENTWISE_NUM_WARPS",
    "triton",
    "tl",
]

# Dtypes the kernels accept (fp32 accumulation inside for all three).
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_TRUE = {"1", "true", "yes", "on"}


def _forced() -> str:
    value = os.environ.get("TINYLLM_KERNELS", "").strip().lower()
    if value not in ("", "auto", "reference", "triton"):
        raise ValueError(f"TINYLLM_KERNELS must be 'reference', 'triton' or 'auto', got {value!r}")
    return value


def _interpret_env() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE


# Both triton's own jit functions and ours (decorated just after this module) interpret.
INTERPRETED = HAS_TRITON and _interpret_env() and isinstance(tl.max, InterpretedFunction)

_LATE_INTERPRET = (
    "TRITON_INTERPRET=1 was set after triton was imported (import torch._dynamo or "
    "torch.compile imports it), so the Triton interpreter is not active; set it in the "
    "environment before the first import of torch._dynamo / triton / tinyllm.kernels"
)


def kernel_backend(tensor: torch.Tensor) -> str:
    """'triton' or 'reference': the path an op called on `tensor` takes now.

    >>> kernel_backend(torch.zeros(1))  # CPU, no TRITON_INTERPRET
    'reference'
    """
    forced = _forced()
    if forced == "reference":
        return "reference"
    if not HAS_TRITON:
        if forced == "triton":
            raise RuntimeError(
                f"TINYLLM_KERNELS=triton but triton is not importable ({TRITON_IMPORT_ERROR!r}; "
                "pip install triton, Linux only); unset it to use the reference"
            )
        return "reference"
    if tensor.device.type == "cuda" or (INTERPRETED and tensor.device.type == "cpu"):
        return "triton"
    if forced == "triton" or (tensor.device.type == "cpu" and _interpret_env()):
        raise RuntimeError(
            _LATE_INTERPRET
            if _interpret_env()
            else f"TINYLLM_KERNELS=triton for a {tensor.device.type} tensor needs CUDA or "
            "TRITON_INTERPRET=1 (set before triton is imported)"
        )
    return "reference"


def use_interpreter() -> bool:
    """True when Triton launches go through the interpreter (fixed at import, see above)."""
    return INTERPRETED


def launchable(kernel):
    """What to launch: the autotuned kernel on the GPU; in the interpreter, the plain
    interpreted function (one fixed configuration given by the caller, no autotuning)."""
    if not INTERPRETED:
        return kernel
    while not isinstance(kernel, InterpretedFunction):  # Autotuner -> InterpretedFunction
        kernel = kernel.fn
    return kernel


def device_of(tensor: torch.Tensor):
    """Context that makes tensor's GPU the current one: triton launches on the current device."""
    if tensor.device.type == "cuda":
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def check_elementwise_input(op: str, name: str, t) -> None:
    """The contract every elementwise kernel's input shares: a contiguous float32, float16 or
    bfloat16 tensor (the kernels index it flat). Raises ValueError naming op and argument."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{op}: {name} dtype must be float32, float16 or bfloat16, got {t.dtype}")
    if not t.is_contiguous():
        raise ValueError(
            f"{op}: {name} must be contiguous, got shape {tuple(t.shape)} with strides "
            f"{t.stride()}; call .contiguous() first"
        )


# Elementwise kernels: 4096 elements per program (16 per thread at 8 warps: 16-byte vector
# accesses); the interpreter gets smaller blocks so small test shapes span several programs.
ELEMENTWISE_BLOCK_SIZE, ELEMENTWISE_NUM_WARPS = 4096, 8
_INTERPRET_ELEMENTWISE_BLOCK_SIZE = 1024


def launch_elementwise(kernel, n: int, *args, **constexprs) -> None:
    """Launch `kernel(*args, n, **constexprs, BLOCK_SIZE=...)` with one program per block of
    the flattened (contiguous) tensors, on args[0]'s device."""
    interpret = use_interpreter()
    block = _INTERPRET_ELEMENTWISE_BLOCK_SIZE if interpret else ELEMENTWISE_BLOCK_SIZE
    opts = {} if interpret else {"num_warps": ELEMENTWISE_NUM_WARPS}
    with device_of(args[0]):
        launchable(kernel)[(triton.cdiv(n, block),)](*args, n, **constexprs, BLOCK_SIZE=block, **opts)
