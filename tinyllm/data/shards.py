"""Token shards on disk, as `tinyllm prepare` writes them and `tinyllm train --data DIR` reads them.

    DIR/meta.json          FORMAT, VERSION, dtype, vocab_size, tokenizer_hash, the shard lists, token counts
    DIR/tokenizer.txt      the tokenizer the shards were encoded with
    DIR/train_NNNNNN.bin   uint16 ids (uint32 when the vocabulary exceeds 65,536), documents back to back
    DIR/val_NNNNNN.bin

Every file is written through a temp file and a rename; meta.json is written last, so a
reader never finds a meta.json naming a partial shard. The reader memmaps the shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TinyLLMError
from ..io import atomic_open

FORMAT = "tinyllm-shards"
VERSION = 1


class ShardWriter:
    """Appends id lists to OUT/<split>_NNNNNN.bin, starting a new shard (between documents)
    once a shard holds shard_tokens ids. Each shard is renamed into place when complete."""

    def __init__(self, out: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.out, self.split, self.dtype, self.shard_tokens = out, split, dtype, shard_tokens
        self.shards: list[str] = []
        self.tokens = 0
        self.documents = 0
        self._ctx = self._f = None
        self._in_shard = 0

    def write(self, ids: list[int]) -> None:
        if self._f is None:
            name = f"{self.split}_{len(self.shards):06d}.bin"
            self._ctx = atomic_open(self.out / name, "wb")
            self._f = self._ctx.__enter__()
            self.shards.append(name)
        self._f.write(np.asarray(ids, dtype=self.dtype).tobytes())
        self._in_shard += len(ids)
        self.tokens += len(ids)
        self.documents += 1
        if self._in_shard >= self.shard_tokens:
            self._finish()

    def _finish(self, exc=None) -> None:
        if self._ctx is not None:
            ctx, self._ctx, self._f, self._in_shard = self._ctx, None, None, 0
            if exc is None:
                ctx.__exit__(None, None, None)
            else:
                ctx.__exit__(type(exc), exc, exc.__traceback__)

    def close(self, exc=None) -> None:
        self._finish(exc)


def read_prepared_meta(data_dir: str | Path) -> dict | None:
    """meta.json of a `tinyllm prepare` folder, or None when data_dir is not one."""
    from .tokens import read_meta

    p = Path(data_dir)
    if not p.is_dir() or not (p / "meta.json").is_file():
        return None
    meta = read_meta(p / "meta.json", "shard metadata")
    return meta if isinstance(meta, dict) and "train_shards" in meta else None


def is_prepared_dir(data_dir: str | Path) -> bool:
    return read_prepared_meta(data_dir) is not None


def load_prepared(data_dir: str | Path, context_length: int, tokenizer_path: str | Path | None = None):
    """-> (train TokenDataset, val TokenDataset, meta, tokenizer); the shards are memmapped."""
    from ..tokenizer import Tokenizer
    from .tokens import TokenDataset, read_tokens, tokenizer_hash

    d = Path(data_dir)
    meta = read_prepared_meta(d)
    if meta is None:
        raise TinyLLMError(f"{d}: not a folder written by `tinyllm prepare` (no meta.json listing shards)")
    if meta.get("version", VERSION) != VERSION:
        raise TinyLLMError(f"{d / 'meta.json'}: shard format version {meta.get('version')} is not supported")
    tok = Tokenizer.load(tokenizer_path or d / meta.get("tokenizer", "tokenizer.txt"))
    if meta.get("tokenizer_hash") and tokenizer_hash(tok) != meta["tokenizer_hash"]:
        raise TinyLLMError(
            f"--tokenizer {tokenizer_path}: not the tokenizer {d} was encoded with "
            f"(use {d / meta.get('tokenizer', 'tokenizer.txt')} or leave --tokenizer out)"
        )
    dtype = np.dtype(meta.get("dtype", "uint16"))
    arrays = {}
    for split in ("train", "val"):
        arrays[split] = []
        for name in meta[f"{split}_shards"]:
            f = d / name
            if f.exists() and f.stat().st_size % dtype.itemsize:
                raise TinyLLMError(
                    f"{f}: size {f.stat().st_size} is not a whole number of {dtype.name} ids (truncated?)"
                )
            arrays[split].append(read_tokens(f, dtype))
    return (
        TokenDataset(arrays["train"], context_length, f"{d} (train shards)"),
        TokenDataset(arrays["val"], context_length, f"{d} (val shards)"),
        meta,
        tok,
    )
