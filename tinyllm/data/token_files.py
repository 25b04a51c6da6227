"""Token files and their metadata, without torch: `tinyllm prepare` writes shards through these, and
prepare needs no torch (importing it took 2-7 s, longer than preparing 50 MB). tokens.py, which
reads the files back as torch datasets, re-exports them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import TinyLLMError
from ..io import atomic_open


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def write_tokens(path: str | Path, chunks: Iterable[Sequence[int]], vocab_size: int) -> int:
    """Stream id chunks to `path` (atomically); returns the number of tokens written."""
    dtype = token_dtype(vocab_size)
    n = 0
    with atomic_open(path, "wb") as f:
        for ids in chunks:
            arr = np.asarray(ids, dtype=np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
                raise TinyLLMError(f"{path}: token id {int(arr.max())} out of range for vocab_size {vocab_size}")
            f.write(arr.astype(dtype).tobytes())
            n += arr.size
    return n


def read_tokens(path: str | Path, dtype: np.dtype | str) -> np.memmap:
    path = Path(path)
    if not path.exists():
        raise TinyLLMError(f"{path}: token file missing")
    if path.stat().st_size == 0:
        raise TinyLLMError(f"{path}: token file is empty")
    return np.memmap(path, dtype=np.dtype(dtype), mode="r")


def part_bounds(n: int, part: int, parts: int) -> tuple[int, int]:
    """[lo, hi) of part `part` of `parts` near-equal slices of range(n); never empty when n >= 1
    (tiny data with more parts than items: neighbouring parts share an item)."""
    lo = part * n // parts
    return lo, max(lo + 1, (part + 1) * n // parts)


def tokenizer_hash(tokenizer) -> str:
    """Which tokenizer encoded a token file: recorded in its meta.json, checked when it is read back."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]


def write_meta(path: str | Path, meta: dict) -> None:
    with atomic_open(path, "w") as f:
        json.dump(meta, f, indent=2)


def read_meta(path: str | Path, what: str = "token metadata") -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TinyLLMError(f"{path}: cannot read {what} ({e})") from None
