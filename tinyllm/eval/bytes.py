"""Bits per byte: cross-entropy per UTF-8 byte of text, a number that does not depend on the tokenizer.

    bpb = (sum of nats over the scored tokens) / ln 2 / (UTF-8 bytes those tokens stand for)

A token stands for the bytes `tokenizer.decode_bytes([id])` gives. A special token stands for its
name (`<EOS>` is 5 bytes): tinyllm's tokenizers recognise the names whole in text, so the bytes of
every id of an encoded text add up to exactly the text's UTF-8 length, and Q&A rows, whose template
text spells `<BOS> Question: ...`, count the template as written. `<PAD>` is never a scored target.
"""

from __future__ import annotations

import math

import numpy as np


def token_byte_lengths(tokenizer) -> np.ndarray:
    """(vocab_size,) int64: how many UTF-8 bytes each token id stands for."""
    return np.array([len(tokenizer.decode_bytes([i])) for i in range(tokenizer.vocab_size)], dtype=np.int64)


def bits_per_byte(nats: float, n_bytes: int) -> float:
    """Total nats over n_bytes bytes -> bits per byte (nan when there are no bytes)."""
    return nats / math.log(2) / n_bytes if n_bytes > 0 else float("nan")
