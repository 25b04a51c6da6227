"""Loss estimates during training: the same batches at every evaluation, so curves compare.

`estimate_loss_bpb` is the one estimate (train/val loss, and val bits per byte beside it);
`tinyllm eval --trainer_batches` calls it on the same split, batches and seed, so it reproduces
a metrics.jsonl row exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from ..eval.bytes import bits_per_byte, token_byte_lengths
from ..model.loss import IGNORE_INDEX
from .batches import derive_seed

EVAL_STREAM = 0x5EED  # seeds evaluation batches apart from training batches


@torch.no_grad()
def estimate_loss_bpb(
    model, ds, split_id: int, batches: int, batch_size: int, seed: int, device, autocast, tokenizer=None
) -> tuple[float, float | None]:
    """-> (mean of the batches' mean losses, bits per byte over all their scored targets) of `model`
    on `batches` random batches of `ds`, drawn from (seed, split_id) alone. bpb is None without a tokenizer.

    The loss keeps its historical meaning (a mean of batch means); bpb is total nats / ln 2 / total
    bytes, so a batch with more scored tokens weighs more, as a byte count must."""
    model.eval()
    lengths = torch.from_numpy(token_byte_lengths(tokenizer)) if tokenizer is not None else None
    losses, nats, n_bytes = [], 0.0, 0
    for i in range(batches):
        gen = torch.Generator().manual_seed(derive_seed(seed, EVAL_STREAM, split_id, i))
        x, y = ds.sample(gen, batch_size)  # (B, T) each; y == IGNORE_INDEX where not scored
        with autocast():
            _, loss = model(x.to(device), y.to(device), return_logits=False)
        losses.append(loss.item())
        if lengths is not None:
            scored = y != IGNORE_INDEX
            nats += loss.item() * int(scored.sum())  # the loss is the mean over scored targets
            n_bytes += int(lengths[y[scored]].sum())
    model.train()
    return float(np.mean(losses)), (bits_per_byte(nats, n_bytes) if lengths is not None else None)


def estimate_loss(model, ds, split_id: int, batches: int, batch_size: int, seed: int, device, autocast) -> float:
    """Mean loss of `model` over `batches` random batches of `ds`, drawn from (seed, split_id) alone."""
    return estimate_loss_bpb(model, ds, split_id, batches, batch_size, seed, device, autocast)[0]
