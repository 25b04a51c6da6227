"""Learning-rate schedule: linear warmup, then cosine decay to min_lr."""

import math


def lr_at(step: int, max_lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> float:
    """lr for optimizer step `step` (0-based).

    step < warmup:  max_lr * (step + 1) / warmup           (never exactly 0)
    then:           min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2, progress 0 -> 1
    """
    if step < warmup_iters:
        return max_lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    decay_steps = max(1, max_iters - warmup_iters)
    progress = (step - warmup_iters) / decay_steps
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
