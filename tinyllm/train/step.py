"""One training step: grad_accumulation_steps micro-batches, forward + backward each, the
gradient all-reduced once (on the last micro-step, under DDP; reduce-scattered once under FSDP),
the global norm clipped.
The optimizer step itself is the caller's, after it has checked that the loss is finite."""

from __future__ import annotations

import contextlib
import math

import torch

from ..errors import TinyLLMError
from . import distributed as dist_utils
from .batches import derive_seed, slice_batch
from .schedule import lr_at


class TrainStep:
    """step(s, stop_requested) -> (mean loss over ranks, gradient norm, stop flag of any rank)."""

    def __init__(self, model, raw, dataset, cfg, context_length: int, dist, device, autocast):
        self.model, self.raw, self.ds = model, raw, dataset  # model: what to call (DDP or not); raw: its weights
        self.cfg, self.dist, self.device, self.autocast = cfg, dist, device, autocast
        self.accum = cfg.grad_accumulation_steps
        self.parts = self.accum * dist.world_size  # micro-batches per step, each from its own slice of the data
        self.tokens_per_step = cfg.batch_size * self.parts * context_length
        # [loss summed over the micro-steps, stop flag]: both ride one all-reduce per step under DDP
        self.stats = torch.zeros(2, device=device)
        self.no_grad_norm = torch.zeros((), device=device)  # without clipping
        self.fsdp = hasattr(model, "set_requires_gradient_sync")  # fully_shard'ed (parallel.py)

    def micro_batch(self, step: int, g: int):
        """Global micro-batch g of step `step`: from slice g of the data, seeded by (seed, step, g) alone."""
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, step, g))
        x, y = slice_batch(self.ds, gen, self.cfg.batch_size, g, self.parts)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def __call__(self, step: int, stop_requested: bool) -> tuple[float, float, bool]:
        cfg, stats = self.cfg, self.stats
        stats.zero_()
        for micro in range(self.accum):
            g = self.dist.rank * self.accum + micro
            x, y = self.micro_batch(step, g)
            torch.manual_seed(derive_seed(cfg.seed, step, g, 1))  # dropout: the same masks in a resumed run
            sync = micro == self.accum - 1 or not self.dist.enabled  # all-reduce only on the last micro-step
            if self.fsdp:  # FSDP2: no reduce-scatter until the last micro-step (grads accumulate unsharded)
                self.model.set_requires_gradient_sync(sync)
            with contextlib.nullcontext() if sync or self.fsdp else self.model.no_sync():
                with self.autocast():
                    _, loss = self.model(x, y, return_logits=False)  # fused head + loss: no (B, T, V) logits
                    loss = loss / self.accum
                loss.backward()
            stats[0] += loss.detach()
        norm = (
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), cfg.grad_clip)
            if cfg.grad_clip > 0
            else self.no_grad_norm
        )
        if hasattr(norm, "full_tensor"):  # FSDP: a DTensor, the global norm over every rank's shards
            norm = norm.full_tensor()
        dist_utils.all_reduce_mean_and_flag(stats, stop_requested, self.dist)
        # one host sync per step for all three numbers (each .item() on CUDA is a sync of its own)
        loss, flag, norm = torch.cat([stats, norm.float().reshape(1)]).tolist()
        return loss, norm, flag > 0


def set_lr(optimizer, step: int, cfg) -> float:
    """The schedule's lr for `step` (schedule.py), set on every parameter group."""
    lr = lr_at(step, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def check_finite(loss: float, grad_norm: float, step: int, last_good, bar) -> None:
    """Stop before the optimizer spreads a NaN/inf into the weights (and into a checkpoint);
    last_good() names the checkpoint to go back to."""
    bad = None
    if not math.isfinite(loss):
        bad = f"loss became {loss}"
    elif not math.isfinite(grad_norm):
        bad = f"gradient norm became {grad_norm}"
    if bad:
        bar.close()
        raise TinyLLMError(
            f"{bad} at step {step + 1}; stopped without applying it. Last good checkpoint: {last_good()}"
        )
