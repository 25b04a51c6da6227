"""`evaluate_checkpoint`: what `tinyllm eval` runs, for the CLI and Python alike.

Two measurements of one checkpoint on one text (eval/source.py):
  * the whole stream in non-overlapping context-length chunks (eval/text.py): the held-out number;
  * with trainer_batches, the trainer's own estimate (train/evaluate.py): the same eval_iters random
    batches of batch_size windows from the same seed as `tinyllm train` drew, so on --split val it
    reproduces the val_loss and val_bpb the trainer logged for that checkpoint's step.
"""

from __future__ import annotations

import math

from ..errors import TinyLLMError
from .bytes import token_byte_lengths
from .source import load_eval_text
from .text import evaluate_ids

DEFAULT_BATCH_SIZE = 16


def evaluate_checkpoint(
    checkpoint: str,
    data: str | None = None,
    split: str = "all",
    max_tokens: int | None = None,
    batch_size: int | None = None,
    trainer_batches: bool = False,
    device: str = "auto",
) -> dict:
    """-> a JSON-able dict: loss, perplexity, bpb, tokens, bytes, ... and what was evaluated.
    data defaults to the checkpoint's training data (then a split other than 'all' is the usual ask)."""
    from ..train.checkpoint import load_checkpoint
    from ..train.distributed import resolve_device
    from ..train.precision import autocast_setup

    for flag, v in (("--batch_size", batch_size), ("--max_tokens", max_tokens)):
        if v is not None and v <= 0:
            raise TinyLLMError(f"{flag} must be positive, got {v}")
    dev = resolve_device(device)
    model, tok, info = load_checkpoint(checkpoint, device=dev)
    train_cfg = info.get("train_config") or {}
    if info.get("is_qa"):
        raise TinyLLMError(f"{checkpoint}: a Q&A checkpoint; tinyllm eval measures text models")
    data = data or train_cfg.get("data")
    if not data:
        raise TinyLLMError(f"{checkpoint}: records no training data; pass --data")
    text = load_eval_text(tok, data, split, max_tokens)
    _, autocast = autocast_setup(train_cfg.get("dtype", "auto"), dev)
    T = model.config.context_length
    report = {
        "checkpoint": str(checkpoint),
        "step": info.get("step"),
        "data": text.name,
        "split": split,
        "context_length": T,
        "text_tokens": len(text.ids),
        "text_bytes": text.text_bytes,
    }
    if trainer_batches:
        return {**report, **_trainer_estimate(model, tok, text, split, train_cfg, batch_size, dev, autocast)}
    result = evaluate_ids(model, text.ids, token_byte_lengths(tok), batch_size or DEFAULT_BATCH_SIZE, dev, autocast)
    return {
        **report,
        "method": f"non-overlapping {T}-token chunks",
        "batch_size": batch_size or DEFAULT_BATCH_SIZE,
        **result.to_dict(),
    }


def _trainer_estimate(model, tok, text, split, train_cfg, batch_size, device, autocast) -> dict:
    """The trainer's estimate (eval_iters sampled batches) on this text's tokens."""
    from ..data.tokens import TokenDataset
    from ..train.evaluate import estimate_loss_bpb

    for key in ("eval_iters", "batch_size", "seed"):
        if key not in train_cfg:
            raise TinyLLMError(f"checkpoint records no train_config.{key}; --trainer_batches needs it")
    B = batch_size or train_cfg["batch_size"]
    ds = TokenDataset(text.ids, model.config.context_length, text.name)
    split_id = 0 if split == "train" else 1  # the trainer's ids: train 0, val 1
    loss, bpb = estimate_loss_bpb(
        model, ds, split_id, train_cfg["eval_iters"], B, train_cfg["seed"], device, autocast, tok
    )
    return {
        "method": f"the trainer's estimate: {train_cfg['eval_iters']} random batches of {B} windows, "
        f"seed {train_cfg['seed']}",
        "batch_size": B,
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bpb": bpb,
    }
