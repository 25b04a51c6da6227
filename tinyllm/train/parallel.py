"""How the model is spread over the ranks: DDP (a full copy each) or FSDP2 (`fully_shard`, each rank
holds 1/world_size of every parameter, gradient and AdamW state), and activation checkpointing.

FSDP follows torchtitan's distributed/fsdp.py: fully_shard each transformer block, then the root.
The root's unit holds tok_emb and the LM head, which are one Parameter (weight tying), so the shared
weight is all-gathered once per forward and its gradient (embedding + head) reduce-scattered once.
On CUDA the blocks compute in bf16 with fp32 gradient reduction and fp32 sharded master weights;
on CPU everything stays float32. `--compile` compiles each block in place (keys unchanged), as
torchtitan does: FSDP's hooks stay outside the compiled graphs.

Activation checkpointing ('full') keeps only each block's input and recomputes the block in the
backward (torch.utils.checkpoint, non-reentrant, RNG state preserved so dropout masks match).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def apply_activation_checkpointing(model) -> None:
    """Recompute each block's forward in the backward. The block module is kept (state_dict keys and
    FSDP's hooks on it unchanged); only its forward is wrapped."""
    for block in model.blocks:
        inner = block.forward

        def forward(*args, _inner=inner, **kwargs):
            if not torch.is_grad_enabled():  # evaluation / generation: nothing to save
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, preserve_rng_state=True, **kwargs)

        block.forward = forward


def shard_model(model, device: torch.device, compile_blocks: bool) -> None:
    """fully_shard (FSDP2) every block, then the root (tok_emb = lm_head, ln_f, pos_emb) in place."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if device.type == "cuda"
        else MixedPrecisionPolicy()  # CPU: float32 parameters and reduction
    )
    for i, block in enumerate(model.blocks):
        if compile_blocks:
            block.compile()
        # the last block's parameters are needed at once by the backward: no point resharding them
        fully_shard(block, mp_policy=mp, reshard_after_forward=i < len(model.blocks) - 1)
    fully_shard(model, mp_policy=mp)
    if model.lm_head.weight is not model.tok_emb.weight:
        raise RuntimeError("fully_shard untied the LM head from the token embedding")


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a tensor: a DTensor's local shard, or the tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t


def local_bytes(model, optimizer) -> dict:
    """Bytes this rank holds for parameters, gradients and optimizer state, measured from the local
    shards themselves (DTensor.to_local() under FSDP; the full tensors under DDP)."""
    params = list(model.parameters())  # the tied weight once
    nbytes = lambda t: t.numel() * t.element_size()
    state = 0
    for p in params:
        for v in optimizer.state.get(p, {}).values():
            if isinstance(v, torch.Tensor):
                state += nbytes(local(v))
    return {
        "params": sum(nbytes(local(p)) for p in params),
        "grads": sum(nbytes(local(p.grad)) for p in params if p.grad is not None),
        "optimizer": state,
    }


def describe_bytes(per_rank: list[dict]) -> str:
    """'rank 0: params 1.2 MB, grads 1.2 MB, optimizer 2.4 MB; rank 1: ...' (MB = 1e6 bytes)."""
    return "; ".join(
        f"rank {r}: " + ", ".join(f"{k} {v / 1e6:.3f} MB" for k, v in b.items()) + f" ({sum(b.values()):,} bytes)"
        for r, b in enumerate(per_rank)
    )


def bytes_line(model, optimizer, dist, parallel: str) -> str:
    """All ranks (gathers): the log line of what every rank holds."""
    from . import distributed as dist_utils

    per_rank = dist_utils.gather_objects(local_bytes(model, optimizer), dist)
    return f"memory per rank under {parallel} (parameters, gradients, AdamW state): {describe_bytes(per_rank)}"


def unsharded_copy(model, model_cfg, device, main: bool):
    """All ranks (collective): a plain TinyLLM with the sharded model's full weights on rank 0
    (what the CLI's sample generates with), None on the others."""
    from ..model import TinyLLM
    from .sharded import full_model_state

    weights = full_model_state(model)
    if not main:
        return None
    plain = TinyLLM(model_cfg, device=device)
    plain.load_state_dict(weights)
    return plain


def build_fsdp(raw, model_cfg, start, cfg, device):
    """fully_shard the model, then its optimizer over the shards; a resumed run reads its checkpoint
    into them: a sharded one on any number of ranks (DCP reshards), or a file (every rank reads it
    whole and keeps its shard). -> (model, optimizer, training module, eval module)."""
    from . import sharded

    shard_model(raw, device, cfg.compile)
    opt = raw.configure_optimizer(cfg.max_lr, cfg.weight_decay)
    if start.sharded:
        sharded.load(start.path, raw, opt)
    elif start.resumed is not None:  # DDP's latest.pt

        def plain():
            from ..model import TinyLLM

            m = TinyLLM(model_cfg)
            return m, m.configure_optimizer(cfg.max_lr, cfg.weight_decay)

        sharded.load_full(start.resumed, raw, opt, plain)
    return raw, opt, raw, raw  # FSDP2 shards in place: the model is its own training and eval module
