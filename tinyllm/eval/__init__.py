"""Evaluation: loss, perplexity and bits per byte of a checkpoint on a held-out text (`tinyllm eval`).

bytes.py (bits per byte and what a token's bytes are), text.py (the chunked evaluation and its
reference), source.py (which text, which split), run.py (`evaluate_checkpoint`). Names load lazily."""

from .. import lazy_exports

__all__ = ["EvalResult", "evaluate_ids", "evaluate_ids_ref", "evaluate_checkpoint", "token_byte_lengths"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EvalResult": ".text",
        "evaluate_ids": ".text",
        "evaluate_ids_ref": ".text",
        "evaluate_checkpoint": ".run",
        "token_byte_lengths": ".bytes",
    },
)
