"""Settings for `tinyllm train --data qa.json` when the user gives no sizes:
a model and schedule scaled to the number of pairs, so a small Q&A set is learned
within minutes on a laptop CPU."""

from __future__ import annotations


def qa_preset_name(n_pairs: int) -> str:
    """Few hundred pairs: the demo-sized model; thousands: tiny; more: small."""
    if n_pairs <= 2000:
        return "demo"
    if n_pairs <= 20000:
        return "tiny"
    return "small"


def qa_train_defaults(n_pairs: int) -> dict:
    """Training and model flags (as argparse names) for a Q&A set of n_pairs."""
    if n_pairs <= 2000:
        return dict(vocab_size=1024, context_length=128, max_iters=max(300, min(1500, 8 * n_pairs)),
                    batch_size=16, max_lr=2e-3, warmup_iters=30, eval_interval=100, eval_iters=5,
                    checkpoint_interval=500, dropout=0.0)
    return dict(context_length=256, max_iters=min(20000, 2 * n_pairs), batch_size=32, eval_interval=250)
