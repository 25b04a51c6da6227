"""Token shards on disk, as `tinyllm prepare` writes them and `tinyllm train --data DIR` reads them.

    DIR/meta.json                 the switch: names the complete set, its dtype, vocab_size, tokenizer
                                  hash, token counts, and each shard's size and CRC-32
    DIR/set-<id>/train_NNNNNN.bin uint16 ids (uint32 when the vocabulary exceeds 65,536), documents back
    DIR/set-<id>/val_NNNNNN.bin   to back
    DIR/set-<id>/tokenizer.txt    the tokenizer the set was encoded with (copied to DIR/tokenizer.txt)

All or nothing: a prepare writes its whole set into a new set-<id>/ folder beside the current one
and then replaces meta.json (a rename), which is the one step that switches sets; the old set is
deleted after. A reader therefore sees the old set or the new one, never a mix; an interrupted
prepare leaves the old set in use (and a set folder that the next prepare removes); a folder with
shards but no meta.json is refused as incomplete. Reading checks every shard's size and CRC-32.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import numpy as np

from ..errors import TinyLLMError
from ..io import atomic_open

FORMAT = "tinyllm-shards"
VERSION = 1
CRC_BLOCK = 64 << 20  # bytes checksummed at a time
FLUSH_BYTES = 16 << 20  # bytes written to a shard before the next background flush of its pages


class ShardWriter:
    """Appends id lists to OUT/<split>_NNNNNN.bin, starting a new shard (between documents)
    once a shard holds shard_tokens ids. Each shard is renamed into place when complete."""

    def __init__(self, out: Path, split: str, dtype: np.dtype, shard_tokens: int, prefix: str = ""):
        self.out, self.split, self.dtype, self.shard_tokens = out, split, dtype, shard_tokens
        self.prefix = prefix  # the set folder's name, as meta.json names the shards: "set-<id>/"
        self.shards: list[str] = []
        self.checks: dict[str, dict] = {}  # shard -> {"bytes", "crc32"}, for readers to verify
        self.tokens = 0
        self.documents = 0
        self._ctx = self._f = None
        self._in_shard = 0
        # A shard's pages go to the disk in the background as it fills (fdatasync on a helper thread;
        # the GIL is not held): the fsync that ends a shard, serial, then has only the last ones to
        # write, not the whole shard (0.25 ms a MB here, 54 ms for a 117 MB set).
        self._flusher = self._flush = None
        self._unflushed = 0

    def write(self, ids: list[int]) -> None:
        """One document's ids (the slow, obvious twin of write_documents)."""
        self._open()
        self._append(np.asarray(ids, dtype=self.dtype), 1)

    def write_documents(self, ids: np.ndarray, bounds) -> None:
        """Documents ids[bounds[i]:bounds[i+1]], i = 0 .. len(bounds) - 2, written as write() writes
        them one by one (the same bytes, shard ends and checks) but one slice per shard they fill:
        per-document Python was most of prepare's time (tests/test_prepare.py compares the two)."""
        bounds = np.asarray(bounds, dtype=np.int64)
        i, n = 0, len(bounds) - 1
        while i < n:
            self._open()
            # the first document whose end fills this shard, else the last: documents i..last go in
            reach = bounds[i] + (self.shard_tokens - self._in_shard)
            last = min(i + int(np.searchsorted(bounds[i + 1 :], reach, side="left")), n - 1)
            self._append(np.asarray(ids[bounds[i] : bounds[last + 1]], dtype=self.dtype), last + 1 - i)
            i = last + 1

    def _open(self) -> None:
        if self._f is None:
            name = f"{self.split}_{len(self.shards):06d}.bin"
            self._ctx = atomic_open(self.out / name, "wb")
            self._f = self._ctx.__enter__()
            self.shards.append(self.prefix + name)
            self.checks[self.shards[-1]] = {"bytes": 0, "crc32": 0}

    def _append(self, ids: np.ndarray, documents: int) -> None:
        """ids (of `documents` whole documents) to the open shard; the shard ends once it is full."""
        data = ids.tobytes()
        self._f.write(data)
        check = self.checks[self.shards[-1]]
        check["bytes"] += len(data)
        check["crc32"] = zlib.crc32(data, check["crc32"])
        self._in_shard += len(ids)
        self.tokens += len(ids)
        self.documents += documents
        self._unflushed += len(data)
        if self._in_shard >= self.shard_tokens:
            self._finish()
        elif self._unflushed >= FLUSH_BYTES and (self._flush is None or self._flush.done()):
            self._flushed()  # the last flush's error, if it had one
            if self._flusher is None:
                from concurrent.futures import ThreadPoolExecutor

                self._flusher = ThreadPoolExecutor(1, thread_name_prefix="tinyllm-flush")
            self._f.flush()
            self._flush = self._flusher.submit(getattr(os, "fdatasync", os.fsync), self._f.fileno())
            self._unflushed = 0

    def _flushed(self) -> None:
        """Wait for the background flush (before its file closes: the fd is the flush's), raising its error."""
        flush, self._flush = self._flush, None
        if flush is not None:
            flush.result()

    def _finish(self, exc=None) -> None:
        """The open shard renamed into place (complete), or with `exc`, discarded."""
        if self._ctx is not None:
            ctx, self._ctx, self._f, self._in_shard, self._unflushed = self._ctx, None, None, 0, 0
            try:
                self._flushed()
            except OSError as e:  # the disk refused the shard's pages: it is not complete
                if exc is None:
                    ctx.__exit__(type(e), e, e.__traceback__)
                    raise
            if exc is None:
                ctx.__exit__(None, None, None)
            else:
                ctx.__exit__(type(exc), exc, exc.__traceback__)

    def close(self, exc=None) -> None:
        try:
            self._finish(exc)
        finally:
            if self._flusher is not None:
                self._flusher.shutdown()
                self._flusher = None


def read_prepared_meta(data_dir: str | Path) -> dict | None:
    """meta.json of a `tinyllm prepare` folder, or None when data_dir is not one."""
    from .token_files import read_meta

    p = Path(data_dir)
    if not p.is_dir() or not (p / "meta.json").is_file():
        return None
    meta = read_meta(p / "meta.json", "shard metadata")
    return meta if isinstance(meta, dict) and "train_shards" in meta else None


def is_prepared_dir(data_dir: str | Path) -> bool:
    return read_prepared_meta(data_dir) is not None


_SET_DIR = re.compile(r"set-\d{8}-\d{6}-\w+")  # what prepare names a set's folder
_FLAT_SHARD = re.compile(r"(train|val)_\d{6}\.bin")  # a shard of the older flat layout


def is_shard_set_name(name: str) -> bool:
    """A set folder or a flat-layout shard that `tinyllm prepare` wrote (never anything else in --out)."""
    return bool(_SET_DIR.fullmatch(name) or _FLAT_SHARD.fullmatch(name))


def refuse_incomplete(data_dir: str | Path) -> None:
    """A folder with prepare's shards but no meta.json is a prepare that never finished (or is running)."""
    p = Path(data_dir)
    if p.is_dir() and not (p / "meta.json").exists() and any(is_shard_set_name(f.name) for f in p.iterdir()):
        raise TinyLLMError(
            f"{p}: an incomplete `tinyllm prepare` output (shards but no meta.json: the prepare was interrupted, "
            f"or is still running); "
            f"run the same `tinyllm prepare ... --out {p}` again to finish it"
        )


def crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def check_shard(path: Path, name: str, meta: dict, dtype: np.dtype) -> None:
    """Refuse a shard whose size or checksum contradicts meta.json, naming it."""
    if not path.exists():
        raise _Vanished(f"{path}: shard listed in meta.json is missing")
    size = path.stat().st_size
    want = meta.get("shard_checks", {}).get(name)
    if want is None:  # written before checks were recorded: only whole ids can be verified
        if size % dtype.itemsize:
            raise TinyLLMError(f"{path}: size {size} is not a whole number of {dtype.name} ids (truncated?)")
        return
    if size != want["bytes"]:
        raise TinyLLMError(
            f"{path}: {size} bytes, but meta.json says {want['bytes']} (truncated or replaced?); "
            f"run `tinyllm prepare` again"
        )
    if crc32_file(path) != want["crc32"]:
        raise TinyLLMError(
            f"{path}: its CRC-32 does not match meta.json (the shard was modified or is corrupt); "
            f"run `tinyllm prepare` again"
        )


def load_prepared(data_dir: str | Path, context_length: int, tokenizer_path: str | Path | None = None):
    """-> (train TokenDataset, val TokenDataset, meta, tokenizer); the shards are memmapped. A prepare
    that switched sets while this read meta.json (and deleted the old set) is met by reading again."""
    try:
        return _load_prepared(data_dir, context_length, tokenizer_path)
    except _Vanished:
        return _load_prepared(data_dir, context_length, tokenizer_path)


class _Vanished(TinyLLMError):
    """A file meta.json named is gone (a new prepare may have just switched sets)."""


def _load_prepared(data_dir: str | Path, context_length: int, tokenizer_path: str | Path | None = None):
    from ..tokenizer import Tokenizer
    from .tokens import TokenDataset, read_tokens, tokenizer_hash

    d = Path(data_dir)
    meta = read_prepared_meta(d)
    if meta is None:
        raise TinyLLMError(f"{d}: not a folder written by `tinyllm prepare` (no meta.json listing shards)")
    if meta.get("version", VERSION) != VERSION:
        raise TinyLLMError(f"{d / 'meta.json'}: shard format version {meta.get('version')} is not supported")
    own = d / meta.get("tokenizer", "tokenizer.txt")
    if tokenizer_path is None and not own.exists():
        raise _Vanished(f"{own}: the tokenizer meta.json names is missing")
    tok = Tokenizer.load(tokenizer_path or own)
    if meta.get("tokenizer_hash") and tokenizer_hash(tok) != meta["tokenizer_hash"]:
        if tokenizer_path is None:
            raise TinyLLMError(
                f"{own}: not the tokenizer the shards in {d} were encoded with (the folder was "
                f"changed after `tinyllm prepare`); run `tinyllm prepare` again"
            )
        raise TinyLLMError(
            f"--tokenizer {tokenizer_path}: not the tokenizer {d} was encoded with (leave --tokenizer out to use {own})"
        )
    dtype = np.dtype(meta.get("dtype", "uint16"))
    arrays = {}
    for split in ("train", "val"):
        arrays[split] = []
        for name in meta[f"{split}_shards"]:
            check_shard(d / name, name, meta, dtype)
            arrays[split].append(read_tokens(d / name, dtype))
    return (
        TokenDataset(arrays["train"], context_length, f"{d} (train shards)"),
        TokenDataset(arrays["val"], context_length, f"{d} (val shards)"),
        meta,
        tok,
    )
