"""Loss estimates during training: the same batches at every evaluation, so curves compare."""

from __future__ import annotations

import numpy as np
import torch

from .batches import derive_seed

EVAL_STREAM = 0x5EED  # seeds evaluation batches apart from training batches


@torch.no_grad()
def estimate_loss(model, ds, split_id: int, batches: int, batch_size: int, seed: int, device, autocast) -> float:
    """Mean loss of `model` over `batches` random batches of `ds`, drawn from (seed, split_id) alone."""
    model.eval()
    losses = []
    for i in range(batches):
        gen = torch.Generator().manual_seed(derive_seed(seed, EVAL_STREAM, split_id, i))
        x, y = ds.sample(gen, batch_size)
        with autocast():
            _, loss = model(x.to(device), y.to(device), return_logits=False)
        losses.append(loss.item())
    model.train()
    return float(np.mean(losses))
