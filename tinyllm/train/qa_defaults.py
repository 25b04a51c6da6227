"""Settings for `tinyllm train --data qa.json` when the user gives no sizes: a model,
context and schedule scaled to the Q&A set, so that a small set is learned word for
word within minutes on a laptop CPU.

Measured on the shipped demo set (80 pairs, 72 of them in the training split, ~4,100
tokens): the demo-sized model, a 128-token context, batch 8 and 100 passes over the
pairs (479 steps) reproduce all 72 training answers exactly under greedy decoding,
training in 44 s on 2 CPU cores at load average 1.2 (123 s when another job held the
cores). 70 passes (330 steps) gave 71-72 of 72 over three seeds, so 100 leaves margin.
"""

from __future__ import annotations

import math

EPOCHS_SMALL = 100  # passes over a small set: enough to reproduce answers word for word
EPOCHS_LARGE = 30  # larger sets: generalise rather than memorise
BYTES_PER_TOKEN = 3.3  # UTF-8 bytes per token of a ~1k-vocab BPE on English Q&A text (measured: 3.3)
CONTEXTS = (128, 256, 512, 1024)
TEMPLATE_BYTES = len("<BOS> Question: \nAnswer:  <EOS>")


def qa_preset_name(n_pairs: int) -> str:
    """Up to 2,000 pairs: the demo-sized model; up to 20,000: tiny; more: small."""
    if n_pairs <= 2000:
        return "demo"
    if n_pairs <= 20000:
        return "tiny"
    return "small"


def estimate_tokens(pairs) -> list[int]:
    """Rough token counts per pair, before a tokenizer exists (bytes / BYTES_PER_TOKEN)."""
    return [
        math.ceil((len(p.question.encode()) + len(p.answer.encode()) + TEMPLATE_BYTES) / BYTES_PER_TOKEN) for p in pairs
    ]


def qa_train_defaults(pairs, preset: str | None = None) -> dict:
    """Training and model flags (argparse names) for a list of QAPair.

    Model-shape flags (vocab_size, context_length, dropout) are only chosen when no
    --preset was given; the caller fills only flags the user left unset.
    """
    n = len(pairs)
    lengths = estimate_tokens(pairs)
    # the smallest context that holds nearly every pair whole (long outliers are truncated, with a warning)
    longest = sorted(lengths)[int(0.99 * (n - 1))]
    context = next((c for c in CONTEXTS if longest + 1 <= c), CONTEXTS[-1])
    small = n <= 2000
    batch = 8 if small else 32
    epochs = EPOCHS_SMALL if small else EPOCHS_LARGE
    # steps for `epochs` passes: rows are ~90% full once packed
    steps = math.ceil(epochs * sum(lengths) / (batch * (context + 1) * 0.9))
    out = dict(context_length=context, batch_size=batch)
    if small:
        out.update(
            max_iters=min(max(steps, 200), 3000),
            max_lr=2e-3,
            warmup_iters=30,
            eval_interval=100,
            eval_iters=5,
            checkpoint_interval=500,
            vocab_size=1024,
            dropout=0.0,
        )
    else:
        out.update(max_iters=min(max(steps, 1000), 20000), eval_interval=250, checkpoint_interval=1000)
    if preset is not None:  # the user picked the model's size: keep its shape
        for k in ("vocab_size", "context_length", "dropout"):
            out.pop(k, None)
    return out
