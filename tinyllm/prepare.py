"""`tinyllm prepare`: tokenize a large corpus once into token shards that
`tinyllm train --data DIR` memmaps (never loading them into RAM).

    tinyllm prepare --data corpus_dir more.txt --tokenizer tok.txt --out data/shards

Files stream in blocks and are cut into documents exactly as `tinyllm train --data`
cuts them (paragraphs: text between blank lines). Documents are encoded in batches,
on all cores: by the C++ encoder's threads when it is built, else by a process pool
running the pure-Python tokenizer. Ids go to DIR/{train,val}_NNNNNN.bin as uint16
(uint32 when the vocabulary exceeds 65,536 ids), a new shard after --shard_tokens;
DIR/meta.json, written last, lists them. Every file is written through a temp file
and a rename, so an interrupted prepare never leaves a meta.json naming a partial shard.

Split: a corpus that fits in one batch is split by `split_documents`, as `tinyllm train
--data` splits it; a larger one sends block k of 50 documents to val when k % 10 == 9.
"""

from __future__ import annotations

import codecs
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .errors import TinyLLMError
from .io import atomic_open

FORMAT = "tinyllm-shards"
VERSION = 1
READ_BLOCK = 8 << 20         # bytes read from a file at a time
BATCH_DOCS = 4096            # documents encoded per batch ...
BATCH_CHARS = 16 << 20       # ... or fewer when they add up to this many characters
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # the separator load_documents splits on


# ---- reading ---------------------------------------------------------------------------------
def source_files(sources: Iterable[str | Path]) -> list[Path]:
    """Files to read, in order: each file as given, each directory's *.txt files sorted."""
    from .data.corpus import text_files
    from .data.qa import is_qa_file

    files: list[Path] = []
    for s in sources:
        if str(s) != "bible" and Path(s).is_file() and is_qa_file(s):
            raise TinyLLMError(f"{s}: Q&A data is small; train on it directly with `tinyllm train --data {s}`")
        files.extend(text_files(s))
    return files


def file_documents(path: Path) -> Iterator[tuple[str, int]]:
    """The documents of one file, streamed -> (document, file bytes read since the last one).

    Documents are exactly `load_documents`'s paragraphs + "\\n\\n" (invalid UTF-8 becomes
    U+FFFD); the file is read READ_BLOCK bytes at a time. A final ("", n) carries bytes read
    after the last document.
    """
    from .data.corpus import normalize_newlines

    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")  # as read_text: BOM dropped
    text, unread, cr = "", 0, ""
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(READ_BLOCK)
                unread += len(block)
                chunk = cr + decoder.decode(block, final=not block)
                cr = "\r" if block and chunk.endswith("\r") else ""  # its "\n" may be in the next block
                text += normalize_newlines(chunk[:len(chunk) - len(cr)])
                if not block:
                    break
                # cut before the last break that more text cannot lengthen (non-space follows it)
                end = len(text.rstrip())
                cut = None
                for m in _PARAGRAPH_BREAK.finditer(text):
                    if m.end() < end:
                        cut = m
                if cut is None:
                    continue
                for par in _PARAGRAPH_BREAK.split(text[:cut.start()]):
                    if par.strip():
                        yield par + "\n\n", unread
                        unread = 0
                text = text[cut.start():]
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None
    for par in _PARAGRAPH_BREAK.split(text):
        if par.strip():
            yield par + "\n\n", unread
            unread = 0
    if unread:
        yield "", unread


def corpus_documents(sources: list[str]) -> tuple[Iterator[tuple[str, int]], int, str]:
    """-> (iterator of (document, bytes it stands for), total bytes, unit of the total)."""
    if [str(s) for s in sources] == ["bible"]:
        from .data.corpus import load_documents
        docs = load_documents("bible")
        return ((d, 1) for d in docs), len(docs), "doc"
    for s in sources:
        if str(s) == "bible":
            raise TinyLLMError("--data bible cannot be mixed with files; prepare it on its own")
    files = source_files(sources)

    def gen():
        for f in files:
            yield from file_documents(f)

    return gen(), sum(f.stat().st_size for f in files), "B"


def batches(docs: Iterator[tuple[str, int]]) -> Iterator[tuple[list[str], int]]:
    """Documents grouped for encode_batch -> (documents, bytes they stand for)."""
    batch, chars, nbytes = [], 0, 0
    for d, n in docs:
        nbytes += n
        if not d:
            continue
        batch.append(d)
        chars += len(d)
        if len(batch) >= BATCH_DOCS or chars >= BATCH_CHARS:
            yield batch, nbytes
            batch, chars, nbytes = [], 0, 0
    if batch:
        yield batch, nbytes


def split_flags(whole: bool, start: int, n: int) -> list[str]:
    """'train', 'val' or 'both' for documents start .. start+n-1 (see the module docstring);
    `whole`: these n documents are the whole corpus, split as `split_documents` splits it."""
    from .data.pipeline import BLOCK, VAL_EVERY

    if not whole:
        return ["val" if ((start + i) // BLOCK) % VAL_EVERY == VAL_EVERY - 1 else "train" for i in range(n)]
    if n < 2:
        return ["both"] * n  # nothing to hold out: validate on the training text
    block = BLOCK if n >= 2 * BLOCK * VAL_EVERY else 1
    flags = ["val" if (i // block) % VAL_EVERY == VAL_EVERY - 1 else "train" for i in range(n)]
    if "val" not in flags:
        flags[-1] = "val"  # split_documents: the last document is held out
    return flags


# ---- encoding --------------------------------------------------------------------------------
_worker_tok = None


def _init_worker(tok) -> None:
    global _worker_tok
    _worker_tok = tok


def _encode_docs(docs: list[str]) -> list[list[int]]:
    return [_worker_tok.encode(d) for d in docs]


class Encoder:
    """encode(list of documents) -> their id lists, on `workers` cores: C++ threads when the native
    tokenizer is in use, else a process pool (the pure-Python tokenizer holds the GIL)."""

    def __init__(self, tok, workers: int):
        self.tok, self.workers = tok, workers
        self.native = hasattr(tok, "_native")
        self.pool = None
        if not self.native and workers > 1:
            import multiprocessing as mp
            self.pool = mp.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(
                workers, initializer=_init_worker, initargs=(tok,))

    @property
    def name(self) -> str:
        return "C++ encoder" if self.native else ("Python encoder" + (f" x {self.workers} processes"
                                                                       if self.pool else ""))

    def encode(self, docs: list[str]) -> list[list[int]]:
        if self.native:
            return self.tok.encode_batch(docs, num_threads=self.workers)
        if self.pool is None:
            return [self.tok.encode(d) for d in docs]
        size = max(1, len(docs) // (4 * self.workers))
        return [ids for part in self.pool.map(_encode_docs, [docs[i:i + size] for i in range(0, len(docs), size)])
                for ids in part]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


# ---- writing ---------------------------------------------------------------------------------
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


def prepare(sources: list[str], tokenizer_path: str | Path, out: str | Path, shard_tokens: int = 100_000_000,
            workers: int | None = None, progress: bool = True) -> dict:
    """Tokenize `sources` into shards under `out`; -> the meta dict written to out/meta.json."""
    from tqdm import tqdm

    from .data.tokens import token_dtype, tokenizer_hash, write_meta
    from .tokenizer import Tokenizer

    if shard_tokens <= 0:
        raise TinyLLMError(f"--shard_tokens must be a positive integer, got {shard_tokens}")
    if workers is not None and workers <= 0:
        raise TinyLLMError(f"--num_workers must be a positive integer, got {workers}")
    tok = Tokenizer.load(tokenizer_path)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinyLLMError(f"--out {out}: exists and is not a directory")
    docs, total, unit = corpus_documents(sources)
    out.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tok.vocab_size)
    workers = workers or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    encoder = Encoder(tok, workers)
    writers = {s: ShardWriter(out, s, dtype, shard_tokens) for s in ("train", "val")}
    sample_prompt = ""
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=f"tokenizing ({encoder.name})",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    exc = None
    try:
        it = batches(docs)
        first = next(it, None)
        second = next(it, None) if first is not None else None
        if first is None:
            raise TinyLLMError(f"{', '.join(map(str, sources))}: corpus is empty (no non-blank text)")
        whole = second is None
        pending = [first] + ([second] if second is not None else [])

        def all_batches():
            yield from pending
            yield from it

        start = 0
        for batch, nbytes in all_batches():
            for d, ids, split in zip(batch, encoder.encode(batch), split_flags(whole, start, len(batch))):
                for name in (("train", "val") if split == "both" else (split,)):
                    writers[name].write(ids)
                if split != "train" and not sample_prompt:
                    sample_prompt = " ".join(d.split()[:4])
            start += len(batch)
            bar.update(nbytes)
    except BaseException as e:
        exc = e
        raise
    finally:
        bar.close()
        encoder.close()
        for w in writers.values():
            w.close(exc)
    if not writers["train"].tokens:
        raise TinyLLMError(f"{', '.join(map(str, sources))}: no training documents")
    if not writers["val"].tokens:  # fewer than 450 documents in a big corpus: validate on training text
        print("warning: no validation documents (the corpus has too few); validating on the training shards",
              file=sys.stderr)
    tok.save(out / "tokenizer.txt")
    meta = {
        "format": FORMAT, "version": VERSION, "dtype": dtype.name, "vocab_size": tok.vocab_size,
        "tokenizer": "tokenizer.txt", "tokenizer_hash": tokenizer_hash(tok),
        "sources": [str(s) for s in sources],
        "train_shards": writers["train"].shards, "val_shards": writers["val"].shards or writers["train"].shards,
        "train_tokens": writers["train"].tokens, "val_tokens": writers["val"].tokens or writers["train"].tokens,
        "train_documents": writers["train"].documents, "val_documents": writers["val"].documents,
        "shard_tokens": shard_tokens, "encoder": encoder.name, "sample_prompt": sample_prompt,
    }
    write_meta(out / "meta.json", meta)
    # shards of an earlier, larger prepare into the same folder
    keep = set(meta["train_shards"]) | set(meta["val_shards"])
    for old in [*out.glob("train_*.bin"), *out.glob("val_*.bin")]:
        if old.name not in keep:
            old.unlink()
    meta["seconds"] = time.perf_counter() - t0
    return meta


# ---- reading back ------------------------------------------------------------------------------
def read_prepared_meta(data_dir: str | Path) -> dict | None:
    """meta.json of a `tinyllm prepare` folder, or None when data_dir is not one."""
    from .data.tokens import read_meta

    p = Path(data_dir)
    if not p.is_dir() or not (p / "meta.json").is_file():
        return None
    meta = read_meta(p / "meta.json", "shard metadata")
    return meta if isinstance(meta, dict) and "train_shards" in meta else None


def is_prepared_dir(data_dir: str | Path) -> bool:
    return read_prepared_meta(data_dir) is not None


def load_prepared(data_dir: str | Path, context_length: int, tokenizer_path: str | Path | None = None):
    """-> (train TokenDataset, val TokenDataset, meta, tokenizer); the shards are memmapped."""
    from .data.tokens import TokenDataset, read_tokens, tokenizer_hash
    from .tokenizer import Tokenizer

    d = Path(data_dir)
    meta = read_prepared_meta(d)
    if meta is None:
        raise TinyLLMError(f"{d}: not a folder written by `tinyllm prepare` (no meta.json listing shards)")
    if meta.get("version", VERSION) != VERSION:
        raise TinyLLMError(f"{d / 'meta.json'}: shard format version {meta.get('version')} is not supported")
    tok = Tokenizer.load(tokenizer_path or d / meta.get("tokenizer", "tokenizer.txt"))
    if meta.get("tokenizer_hash") and tokenizer_hash(tok) != meta["tokenizer_hash"]:
        raise TinyLLMError(f"--tokenizer {tokenizer_path}: not the tokenizer {d} was encoded with "
                           f"(use {d / meta.get('tokenizer', 'tokenizer.txt')} or leave --tokenizer out)")
    dtype = np.dtype(meta.get("dtype", "uint16"))
    arrays = {}
    for split in ("train", "val"):
        arrays[split] = []
        for name in meta[f"{split}_shards"]:
            f = d / name
            if f.exists() and f.stat().st_size % dtype.itemsize:
                raise TinyLLMError(f"{f}: size {f.stat().st_size} is not a whole number of {dtype.name} ids "
                                   f"(truncated?)")
            arrays[split].append(read_tokens(f, dtype))
    return (TokenDataset(arrays["train"], context_length, f"{d} (train shards)"),
            TokenDataset(arrays["val"], context_length, f"{d} (val shards)"), meta, tok)


# ---- command line ------------------------------------------------------------------------------
def cmd_prepare(args) -> int:
    meta = prepare(args.data, args.tokenizer, args.out, args.shard_tokens, args.num_workers, args.progress)
    secs = meta["seconds"]
    n = meta["train_tokens"] + meta["val_tokens"]
    print(f"prepared {meta['train_tokens']:,} train tokens in {len(meta['train_shards'])} shard(s) and "
          f"{meta['val_tokens']:,} val tokens ({meta['dtype']}) in {args.out} in {secs:.1f}s "
          f"({n / max(secs, 1e-9):,.0f} tokens/s, {meta['encoder']}); train with: tinyllm train --data {args.out}",
          file=sys.stderr)
    return 0


def add_prepare_parser(sub) -> None:
    from .config_flags import str2bool

    p = sub.add_parser("prepare", help="tokenize a large corpus into token shards for `tinyllm train --data DIR`",
                       description="Tokenize text files in parallel into uint16/uint32 token shards that "
                                   "`tinyllm train --data DIR` memmaps.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="text files and/or folders of .txt files (or 'bible')")
    p.add_argument("--tokenizer", required=True, help="tokenizer file (from `tinyllm tokenizer train`)")
    p.add_argument("--out", required=True, help="folder for the shards and meta.json")
    p.add_argument("--shard_tokens", type=int, default=100_000_000,
                   help="start a new shard after this many tokens (default: 100,000,000)")
    p.add_argument("--num_workers", type=int, default=None, help="encoding threads/processes (default: all cores)")
    p.add_argument("--progress", type=str2bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="show a progress bar on stderr (default: true)")
    p.set_defaults(func=cmd_prepare)
