"""Tokenized corpora on disk: flat binary files of uint16 ids (uint32 when the vocab
exceeds 65,535), read back as numpy memmaps so a corpus larger than RAM trains."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import TinyLLMError
from .token_files import (  # also imported from here: their home before prepare went torch-free
    part_bounds,
    read_meta,
    read_tokens,
    token_dtype,
    tokenizer_hash,
    write_meta,
    write_tokens,
)


class TokenDataset(torch.utils.data.Dataset):
    """Windows over one or more token arrays (memmaps); never crosses an array boundary.

    Indexing gives consecutive non-overlapping windows, x = ids[i*T:(i+1)*T] and
    y = x shifted by one (for create_dataloader); `sample` draws random windows
    for the trainer from a seeded generator, so a batch depends only on the seed.
    """

    def __init__(self, arrays: Sequence[np.ndarray] | np.ndarray, context_length: int, name: str = "data"):
        self.arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
        self.T = context_length
        # valid window starts per array: 0 .. len - T - 1 (y needs one more token)
        starts = np.array([max(0, len(a) - self.T) for a in self.arrays], dtype=np.int64)
        if starts.sum() == 0:
            n = sum(len(a) for a in self.arrays)
            raise TinyLLMError(
                f"{name}: {n} tokens is too few for context_length {self.T} (need at least {self.T + 1})"
            )
        self._cum_starts = np.cumsum(starts)
        windows = np.array([max(0, (len(a) - 1) // self.T) for a in self.arrays], dtype=np.int64)
        self._cum_windows = np.cumsum(windows)

    @property
    def num_tokens(self) -> int:
        return int(sum(len(a) for a in self.arrays))

    def __len__(self) -> int:
        return int(self._cum_windows[-1])

    def _window(self, arr_idx: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = torch.from_numpy(self.arrays[arr_idx][start : start + self.T + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        a = int(np.searchsorted(self._cum_windows, i, side="right"))
        local = i - (int(self._cum_windows[a - 1]) if a else 0)
        return self._window(a, local * self.T)

    def sample(
        self, gen: torch.Generator, batch_size: int, part: int = 0, parts: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """batch_size random windows -> x, y: (B, T) int64; with parts > 1 only windows starting
        in slice `part` of `parts` of the stream (micro-batch g of G under torchrun)."""
        lo, hi = part_bounds(int(self._cum_starts[-1]), part, parts)
        picks = torch.randint(lo, hi, (batch_size,), generator=gen).numpy()
        xs, ys = [], []
        for g in picks:
            a = int(np.searchsorted(self._cum_starts, g, side="right"))
            start = int(g) - (int(self._cum_starts[a - 1]) if a else 0)
            x, y = self._window(a, start)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.stack(ys)


def unigram_entropy(tokens, vocab_size: int, chunk: int = 1 << 24) -> float:
    """Entropy (nats) of the token frequency distribution: the loss of the best
    context-free predictor; a model below it has learned from context.

    tokens: an id array, or a list of them (memmaps are counted chunk by chunk: a prepared
    corpus's val shards can be larger than RAM)."""
    arrays = (
        tokens if isinstance(tokens, (list, tuple)) and all(isinstance(a, np.ndarray) for a in tokens) else [tokens]
    )
    counts = np.zeros(vocab_size, dtype=np.int64)
    for a in arrays:
        a = np.asarray(a).reshape(-1)
        for s in range(0, len(a), chunk):
            c = np.bincount(np.asarray(a[s : s + chunk], dtype=np.int64), minlength=len(counts))
            if len(c) > len(counts):  # ids past vocab_size: counted, as a plain bincount would
                counts = np.pad(counts, (0, len(c) - len(counts)))
            counts += c
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def cache_key(corpus, vocab_size: int) -> dict:
    """What a run's cached tokenizer (out_dir/tokenizer.json) and token files (out_dir/data/meta.json)
    are keyed on: the corpus's content hash and the vocabulary size; the token files add the
    hash of the tokenizer that encoded them."""
    return {"corpus": corpus.name, "corpus_hash": corpus.fingerprint, "vocab_size": vocab_size}


def tokenize_documents(tokenizer, docs: list[str], desc: str, chunk: int = 2048):
    """Yield id lists for the documents, in order, encode_batch'ed chunk by chunk."""
    from tqdm import tqdm

    with tqdm(total=len(docs), desc=desc, unit="doc", file=sys.stderr, leave=False, disable=len(docs) < chunk) as bar:
        for i in range(0, len(docs), chunk):
            batch = docs[i : i + chunk]
            yield from tokenizer.encode_batch(batch)
            bar.update(len(batch))


def build_token_files(corpus, tokenizer, data_dir: str | Path, context_length: int):
    """Tokenize the corpus into data_dir/{train,val}.bin (reused when the cache key matches)
    -> (train TokenDataset, val TokenDataset, meta)."""
    from .corpus import split_documents

    data_dir = Path(data_dir)
    key = {
        **cache_key(corpus, tokenizer.vocab_size),
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "dtype": token_dtype(tokenizer.vocab_size).name,
    }
    meta_path = data_dir / "meta.json"
    meta = read_meta(meta_path) if meta_path.exists() else {}
    if {k: meta.get(k) for k in key} != key:
        train_docs, val_docs = split_documents(corpus.documents)
        meta = dict(key)
        for split, docs in (("train", train_docs), ("val", val_docs)):
            meta[f"{split}_tokens"] = write_tokens(
                data_dir / f"{split}.bin",
                tokenize_documents(tokenizer, docs, f"tokenizing {split}"),
                tokenizer.vocab_size,
            )
            meta[f"{split}_documents"] = len(docs)
        write_meta(meta_path, meta)
    train = read_tokens(data_dir / "train.bin", meta["dtype"])
    val = read_tokens(data_dir / "val.bin", meta["dtype"])
    return (
        TokenDataset(train, context_length, f"{corpus.name} (train split)"),
        TokenDataset(val, context_length, f"{corpus.name} (val split)"),
        meta,
    )
