"""The whole decode step in one C++ call (csrc/ops/decode_step.cpp) for a packed float32 model on
the CPU: TinyLLM.forward_rows runs it where it can; its torch path is the reference.

    step = native_step(model)          # None where the native step cannot run
    logits = step(tokens, caches)      # == forward_rows' torch path, within float32 rounding
    last = step.prefill(prompt, cache) # == forward(prompt, cache)'s last logits, likewise

Why: a decode step through torch is ~100 small ops of 5-20 us of dispatch each (25 of them oneDNN
linears at ~11 us fixed cost), most of demo's 0.7 ms step; the arithmetic itself is well under
0.1 ms. The C++ step runs every op of every block on one thread without the GIL, and every matmul
output is one chain of fused multiply-adds in k order whatever tile it falls in, so a row's bits
never depend on the batch (no padding rows needed).

It runs when: the model is packed for inference (TinyLLM.pack_for_inference: weights final), in
eval mode (forward_rows runs without autograd), every parameter float32 on the CPU, the attention
backend is not 'reference' (that one stays the spec), the C++ ops are built and the CPU has AVX2 and
FMA, and every cache is a float32 CPU batch-1 cache (model/decode_attention.py's native_pointers).
One thread, whatever torch.get_num_threads() says: on the 2-core machine this was written on, a
second torch thread made these small models slower, not faster.

The packed panels (each weight as (ceil(N/W), K, W), outputs padded to a multiple of W = WIDTH) are
made once per model (held beside it, not in it: a deepcopy or state_dict never sees them); they are
made again when a parameter changes in place or moves (its version counter or address); replacing a
Parameter object needs pack_for_inference() again.
"""

from __future__ import annotations

import os
import weakref

import torch

from .decode_attention import _ops, native_pointers

ACTIVATION_CODES = {"gelu": 0, "relu": 1, "silu": 2, "swiglu": 3}  # csrc/ops/decode_step.cpp Activation
_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its NativeStep
_SUPPORTED = bool(_ops is not None and hasattr(_ops, "DecodeStep") and _ops.decode_step_supported())
# floats a weight panel holds: 16 where the CPU has AVX-512 (its kernels: twice AVX2's FMA rate on
# AMD Zen 5), else 8 (AVX2); TINYLLM_DECODE_ISA=avx2 picks the AVX2 kernels anyway. A row's bits depend
# on which (they never depend on the batch).
WIDTH = 16 if _SUPPORTED and _ops.decode_step_avx512() and os.environ.get("TINYLLM_DECODE_ISA") != "avx2" else 8


def panels(w: torch.Tensor, width: int) -> torch.Tensor:
    """(N, K) weight -> (ceil(N/width), K, width) contiguous float32: `width` outputs of one k side by
    side, zero-padded."""
    n, k = w.shape
    p = -(-n // width)
    padded = torch.zeros(p * width, k, dtype=torch.float32)
    padded[:n] = w.detach()
    return padded.view(p, width, k).transpose(1, 2).contiguous()


def padded_bias(b: torch.Tensor | None, width: int) -> torch.Tensor | None:
    if b is None:
        return None
    n = b.shape[0]
    out = torch.zeros(-(-n // width) * width, dtype=torch.float32)
    out[:n] = b.detach()
    return out


class NativeStep:
    """A model's weights packed for the C++ step, and the call. Built by native_step()."""

    def __init__(self, model, width: int):
        cfg = model.config
        self.width = width
        self.params = list(model.parameters())
        self.key = self._key()
        keep: list[torch.Tensor] = []  # every tensor whose address the C++ object holds

        def addr(t: torch.Tensor | None) -> int:
            if t is None:
                return 0
            t = t.detach().contiguous()
            keep.append(t)
            return t.data_ptr()

        layers: list[int] = []
        for block in model.blocks:
            ffn = block.ffn
            gate = getattr(ffn, "gate", None)
            for t in (
                block.ln1.weight, block.ln1.bias,
                panels(block.attn.qkv.weight, width), padded_bias(block.attn.qkv.bias, width),
                panels(block.attn.proj.weight, width), padded_bias(block.attn.proj.bias, width),
                block.ln2.weight, block.ln2.bias,
                panels(gate.weight, width) if gate is not None else None,
                padded_bias(gate.bias, width) if gate is not None else None,
                panels(ffn.fc.weight, width), padded_bias(ffn.fc.bias, width),
                panels(ffn.proj.weight, width), padded_bias(ffn.proj.bias, width),
            ):  # fmt: skip
                layers.append(addr(t))
        pos = None
        if cfg.pos_emb == "learned":
            pos = model.pos_emb.weight
        elif cfg.pos_emb == "sinusoidal":
            pos = model.pos_table.float()
        rot = model.rotary
        hidden = model.blocks[0].ffn.fc.out_features
        self.native = _ops.DecodeStep(
            width, cfg.d_model, cfg.n_heads, hidden, cfg.vocab_size, cfg.context_length,
            ACTIVATION_CODES[cfg.activation], model.ln_f.eps, layers,
            addr(model.tok_emb.weight), addr(pos),
            addr(rot.cos if rot is not None else None), addr(rot.sin if rot is not None else None),
            addr(model.ln_f.weight), addr(model.ln_f.bias),
            addr(panels(model.lm_head.weight, width)), addr(padded_bias(model.lm_head.bias, width)),
        )  # fmt: skip
        self.keep = keep
        self.n_layers = cfg.n_layers
        self.heads = (cfg.n_heads, cfg.head_dim)
        self.vocab = cfg.vocab_size

    def _key(self) -> list:
        return [(p._version, p.data_ptr()) for p in self.params]

    def fresh(self) -> bool:
        return self._key() == self.key

    def _takes(self, caches: list) -> list | None:
        """The caches' key/value addresses, or None where the kernel cannot take one of them."""
        ptrs = [native_pointers(c) for c in caches]
        shape = caches[0].k[0].shape  # (1, H, L, D)
        if any(p is None for p in ptrs) or any(c.k[0].shape != shape or len(c.k) != self.n_layers for c in caches):
            return None
        return ptrs if (shape[1], shape[3]) == self.heads else None

    def __call__(self, tokens: list[int], caches: list) -> torch.Tensor | None:
        """-> logits (B, V) with every cache advanced by one, or None (nothing done) when a cache is
        not one the kernel takes."""
        ptrs = self._takes(caches)
        if ptrs is None:
            return None
        logits = torch.empty(len(tokens), self.vocab)
        self.native.step(
            tokens,
            [c.length for c in caches],
            [a for p in ptrs for a in p[0]],
            [a for p in ptrs for a in p[1]],
            caches[0].k[0].shape[2],
            logits.data_ptr(),
            0,
        )
        for c in caches:
            c.length += 1
        return logits

    def prefill(self, tokens: list[int], cache) -> torch.Tensor | None:
        """A prompt's tokens into one cache, as rows of one step at consecutive positions (each row
        attends to what the rows before it stored) -> the last position's logits (1, V), the cache
        advanced by len(tokens); None (nothing done) where the kernel cannot take the cache."""
        ptrs = self._takes([cache])
        if ptrs is None:
            return None
        n, P = cache.length, len(tokens)
        logits = torch.empty(1, self.vocab)
        self.native.step(
            tokens, list(range(n, n + P)), ptrs[0][0] * P, ptrs[0][1] * P, cache.k[0].shape[2], logits.data_ptr(), P - 1
        )
        cache.length += P
        return logits


def can_run(model) -> bool:
    """Whether the model is one the C++ step computes (see the module docstring)."""
    if not (_SUPPORTED and getattr(model, "packed_inference", False)) or model.training:
        return False
    if model.config.attention == "reference":
        return False
    for block in model.blocks:
        if block.ln1.eps != model.ln_f.eps or block.ln2.eps != model.ln_f.eps:
            return False
    return all(p.dtype is torch.float32 and p.device.type == "cpu" for p in model.parameters())


def native_step(model) -> NativeStep | None:
    """The model's NativeStep (made once, made again after its weights change), or None where it
    cannot run."""
    step = _steps.get(model)
    if step is not None and step.fresh() and step.width == WIDTH and model.packed_inference and not model.training:
        return step
    if not can_run(model):
        return None
    step = _steps[model] = NativeStep(model, WIDTH)
    return step
