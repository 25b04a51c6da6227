"""`tinyllm prepare`: tokenize a large corpus once into token shards that
`tinyllm train --data DIR` memmaps (never loading them into RAM).

    tinyllm prepare --data corpus_dir more.txt --tokenizer tok.txt --out data/shards

Files stream in blocks and are cut into documents exactly as `tinyllm train --data`
cuts them (paragraphs: text between blank lines). Documents are encoded in batches,
on all cores: by the C++ encoder's threads when it is built, which take whole blocks of
text and cut them into documents themselves (csrc/paragraphs.h; the reader then makes no
Python string per document), else by a process pool running the pure-Python tokenizer. Ids go to DIR/{train,val}_NNNNNN.bin as uint16
(uint32 when the vocabulary exceeds 65,536 ids), a new shard after --shard_tokens;
DIR/meta.json, written last, lists them. Every file is written through a temp file
and a rename, so an interrupted prepare never leaves a meta.json naming a partial shard.

Split: as `tinyllm train --data` splits it (`split_documents`): block k of 50 documents goes to
val when k % 10 == 9, and a corpus of fewer than 1,000 documents is split document by document.
Prepare reads ahead until it has seen 1,000 documents (or WHOLE_CHARS characters of them: a
corpus of fewer, longer documents then takes the block rule) to know which rule applies.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import usable_cores
from ..errors import TinyLLMError
from ..io import check_output_dir, owned_dir
from . import formats
from .corpus import (
    BLOCK,
    VAL_EVERY,
    load_documents,
    paragraphs,
    split_documents,
    stream_document_blocks,
    text_blocks,
    text_files,
)
from .formats import DEFAULT, ReadOptions
from .qa import is_qa_file
from .shards import FORMAT, VERSION, ShardWriter

BATCH_DOCS = 4096  # documents encoded per batch ...
BATCH_CHARS = 16 << 20  # ... or fewer when they add up to this many characters
TEXT_BATCH_CHARS = 3 << 19  # characters of text per call when the C++ encoder cuts the documents (2 blocks)
TEXT_READ = 1 << 20  # ... read this many bytes at a time
TEXT_FIRST_CHARS = 1 << 19  # the first call takes the first block read: the threads start after one read, not two
DEPTH = 2  # batches read ahead per worker, so that a worker that finishes finds the next one
WHOLE_DOCS = 2 * BLOCK * VAL_EVERY  # fewer documents than this: split document by document
WHOLE_CHARS = 4 * BATCH_CHARS  # how far prepare reads ahead to count them


def source_files(sources: Iterable[str | Path]) -> list[Path]:
    """Files to read, in order: each file as given, each directory's corpus files (formats.is_corpus_file) sorted."""
    files: list[Path] = []
    for s in sources:
        if str(s) != "bible" and Path(s).is_file() and is_qa_file(s):
            raise TinyLLMError(f"{s}: Q&A data is small; train on it directly with `tinyllm train --data {s}`")
        files.extend(text_files(s))
    return files


@dataclass
class Batch:
    """What one encoder call takes: documents, or (texts=True) texts of whole paragraphs that the C++
    encoder cuts into documents itself (corpus.stream_text_blocks); nbytes: the file bytes they stand for."""

    items: list[str] | list[str | bytes]  # bytes: a text block of valid UTF-8 (texts=True only)
    nbytes: int
    texts: bool = False


def corpus_documents(
    sources: list[str], options: ReadOptions = DEFAULT, texts: bool = False
) -> tuple[Iterator[Batch], int, str]:
    """-> (iterator of batches to encode, total bytes, unit of the total), as the files are read.
    texts: batches of text blocks (for the C++ encoder) rather than of documents. options: the text
    field and bad-record policy of JSON Lines / Parquet files."""
    if [str(s) for s in sources] == ["bible"]:
        docs = load_documents("bible")
        return iter([Batch(docs, len(docs))]), len(docs), "doc"
    for s in sources:
        if str(s) == "bible":
            raise TinyLLMError("--data bible cannot be mixed with files; prepare it on its own")
    files = source_files(sources)
    for f in files:  # a missing column or a binary file fails now, not after encoding the files before it
        formats.precheck(f, options)
    total = sum(f.stat().st_size for f in files)
    if texts:
        blocks = (b for f in files for b in text_blocks(f, options, TEXT_READ))
        return text_batches(blocks), total, "B"
    return batches(b for f in files for b in stream_document_blocks(f, options)), total, "B"


def batches(blocks: Iterable[tuple[list[str], int]]) -> Iterator[Batch]:
    """Blocks of documents regrouped for encode_batch: a batch closes at the document that brings it
    to BATCH_DOCS documents or BATCH_CHARS characters."""
    batch, chars, nbytes = [], 0, 0
    for docs, n in blocks:  # no document is empty
        nbytes += n
        while docs:
            # characters up to each document that still fits by count; the first to reach BATCH_CHARS closes the batch
            ends = list(itertools.accumulate(map(len, docs[: BATCH_DOCS - len(batch)])))
            k = min(bisect.bisect_left(ends, BATCH_CHARS - chars) + 1, len(ends))
            batch += docs[:k]
            chars += ends[k - 1]
            docs = docs[k:]
            if len(batch) >= BATCH_DOCS or chars >= BATCH_CHARS:
                yield Batch(batch, nbytes)
                batch, chars, nbytes = [], 0, 0
    if batch:
        yield Batch(batch, nbytes)


def text_batches(blocks: Iterable[tuple[str | bytes, int]]) -> Iterator[Batch]:
    """Text blocks regrouped for encode_paragraphs_flat: a batch closes at the text that brings it to
    TEXT_BATCH_CHARS characters (bytes, of a bytes block; the first batch: TEXT_FIRST_CHARS, as until it
    is read every core but the reader's is idle); blocks of whitespace alone (no document) only add their bytes."""
    batch, chars, nbytes, limit = [], 0, 0, TEXT_FIRST_CHARS
    for text, n in blocks:
        nbytes += n
        if (_NOT_SPACE_BYTES if isinstance(text, bytes) else _NOT_SPACE).search(text) is None:
            continue  # (bytes: ASCII whitespace only; other whitespace goes in, and makes no document)
        batch.append(text)
        chars += len(text)
        if chars >= limit:
            yield Batch(batch, nbytes, texts=True)
            batch, chars, nbytes, limit = [], 0, 0, TEXT_BATCH_CHARS
    if batch or nbytes:
        yield Batch(batch, nbytes, texts=True)


_NOT_SPACE = re.compile(r"\S")
_NOT_SPACE_BYTES = re.compile(rb"\S")


def split_flags(whole: bool, start: int, n: int) -> list[str]:
    """'train', 'val' or 'both' for documents start .. start+n-1 (see the module docstring);
    `whole`: these n documents are the whole corpus, split as `split_documents` splits it."""
    if not whole:
        return ["val" if ((start + i) // BLOCK) % VAL_EVERY == VAL_EVERY - 1 else "train" for i in range(n)]
    if n < 2:
        split_documents([None] * n)  # warns, in split_documents' words, that nothing can be held out
        return ["both"] * n  # nothing to hold out: validate on the training text
    block = BLOCK if n >= 2 * BLOCK * VAL_EVERY else 1
    flags = ["val" if (i // block) % VAL_EVERY == VAL_EVERY - 1 else "train" for i in range(n)]
    if "val" not in flags:
        flags[-1] = "val"  # split_documents: the last document is held out
    return flags


def block_runs(start: int, n: int) -> list[tuple[str, int]]:
    """split_flags(False, start, n) as runs (split, count), made a block at a time, not a document at
    a time (flags for the 310k documents of a 52 MB prepare took 0.057 s under cProfile, beside the
    encoder's threads)."""
    runs, i, end = [], start, start + n
    while i < end:
        block = i // BLOCK
        if block % VAL_EVERY == VAL_EVERY - 1:
            split, stop = "val", (block + 1) * BLOCK
        else:  # train up to the next val block
            split, stop = "train", (block // VAL_EVERY * VAL_EVERY + VAL_EVERY - 1) * BLOCK
        stop = min(stop, end)
        runs.append((split, stop - i))
        i = stop
    return runs


_worker_tok = None


def _init_worker(tok) -> None:
    global _worker_tok
    _worker_tok = tok


def _encode_docs(docs: list[str]) -> list[list[int]]:
    return [_worker_tok.encode(d) for d in docs]


@dataclass
class Encoded:
    """A batch's ids: document i is ids[offsets[i]:offsets[i+1]]; chars: characters of its documents."""

    ids: np.ndarray
    offsets: np.ndarray
    chars: int
    document: Callable[[int], str]
    """Document i's text (for the sample prompt; a text batch cuts it again in Python)."""

    @property
    def n(self) -> int:
        return len(self.offsets) - 1


class Encoder:
    """encode(batch) -> its documents' ids, on `workers` cores: C++ threads when the native tokenizer is
    in use (which also take text batches, cutting the documents themselves), else a process pool (the
    pure-Python tokenizer holds the GIL)."""

    def __init__(self, tok, workers: int):
        self.tok, self.workers = tok, workers
        self.native = hasattr(tok, "_native")
        self.pool = None
        if not self.native and workers > 1:
            import multiprocessing as mp

            self.pool = mp.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(
                workers, initializer=_init_worker, initargs=(tok,)
            )

    @property
    def name(self) -> str:
        return (
            "C++ encoder" if self.native else ("Python encoder" + (f" x {self.workers} processes" if self.pool else ""))
        )

    def encode(self, batch: Batch, threads: int | None = None) -> Encoded:
        """threads: the C++ encoder's threads for this batch (default: every worker's)."""
        threads = threads or self.workers
        if batch.texts:
            ids, offsets, counts, chars = self.tok.encode_paragraphs_flat(batch.items, num_threads=threads)
            first = np.concatenate([[0], np.cumsum(counts)])  # text t holds documents first[t] .. first[t+1]-1

            def document(i: int, texts=batch.items) -> str:
                t = int(np.searchsorted(first, i, side="right")) - 1
                return paragraphs(texts[t])[i - int(first[t])]

            return Encoded(ids, offsets, int(chars.sum()), document)
        docs = batch.items
        if self.native:
            # one flat buffer: no Python list per document and no int per id, so no serial tail after the threads
            ids, offsets = self.tok.encode_batch_flat(docs, num_threads=threads)
        else:
            lists = self._encode_lists(docs)
            offsets = np.zeros(len(lists) + 1, dtype=np.int64)
            np.cumsum([len(x) for x in lists], out=offsets[1:])
            ids = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.uint32, count=int(offsets[-1]))
        return Encoded(ids, offsets, sum(map(len, docs)), docs.__getitem__)

    def _encode_lists(self, docs: list[str]) -> list[list[int]]:
        if self.pool is None:
            return [self.tok.encode(d) for d in docs]
        size = max(1, len(docs) // (4 * self.workers))
        return [
            ids
            for part in self.pool.map(_encode_docs, [docs[i : i + size] for i in range(0, len(docs), size)])
            for ids in part
        ]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def prepare(
    sources: list[str],
    tokenizer_path: str | Path,
    out: str | Path,
    shard_tokens: int = 100_000_000,
    workers: int | None = None,
    progress: bool = True,
    options: ReadOptions = DEFAULT,
) -> dict:
    """Tokenize `sources` into shards under `out`; -> the meta dict written to out/meta.json."""
    from ..tokenizer import Tokenizer
    from .token_files import token_dtype

    if shard_tokens <= 0:
        raise TinyLLMError(f"--shard_tokens must be a positive integer, got {shard_tokens}")
    if workers is not None and workers <= 0:
        raise TinyLLMError(f"--num_workers must be a positive integer, got {workers}")
    tok = Tokenizer.load(tokenizer_path)
    check_output_dir(out, "--out")
    batches_, total, unit = corpus_documents(sources, options, texts=hasattr(tok, "_native"))
    t0 = time.perf_counter()
    with owned_dir(out, "--out", lambda msg: print(msg, file=sys.stderr)) as out:
        # the new set goes into a folder of its own (a unique name); meta.json, replaced last, switches to it
        set_dir = Path(tempfile.mkdtemp(prefix=f"set-{time.strftime('%Y%m%d-%H%M%S')}-", dir=out))
        name = set_dir.name
        try:
            encoder = Encoder(tok, workers or usable_cores())
            try:
                dtype = token_dtype(tok.vocab_size)
                writers = {s: ShardWriter(set_dir, s, dtype, shard_tokens, prefix=f"{name}/") for s in ("train", "val")}
                saved = {}

                def meanwhile():  # the set's tokenizer file and its hash, made while the first batch encodes
                    saved["hash"] = save_tokenizer(tok, set_dir)

                sample_prompt = encode_into(writers, encoder, batches_, (total, unit), sources, progress, meanwhile)
                meta = write_set(
                    out, name, tok, saved["hash"], writers, sources, shard_tokens, encoder.name, sample_prompt
                )
            finally:
                encoder.close()
        except BaseException:
            if not current_set_is(out, name):  # never delete the set meta.json already names
                shutil.rmtree(set_dir, ignore_errors=True)  # the old set (if any) stays in use, untouched
            raise
        retire_old_sets(out, name, tok)
    meta["seconds"] = time.perf_counter() - t0
    return meta


def encoded_ahead(
    encoder: Encoder, batches: Iterator[Batch], meanwhile: Callable[[], object] = lambda: None
) -> Iterator[tuple[Batch, Encoded]]:
    """(batch, its ids) for each batch, in order. With the C++ encoder on 2+ workers, batches encode
    side by side on `workers` helper threads (they run without the GIL), one C++ thread each, while
    this thread reads ahead (up to DEPTH batches a worker) and the caller writes the oldest. Side by
    side, not each batch cut across the threads: the threads of one batch wait at its end for the
    slowest of them, and those waits held 2 workers to ~1.65x one worker's speed in prepare's 52 MB
    benchmark. A batch that no other can follow takes every worker: the first (nothing else is
    read yet), the last, and each one that starts once the last is read.
    One worker is one thread: reading on a second core would be a second worker the user did not ask for.
    meanwhile(): work of the caller's that needs no ids, done while the first batch encodes (else
    it would be time with one core busy, after the last batch)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    # Python encoding holds the GIL: nothing to overlap, and Ctrl-C would wait for a batch
    if not encoder.native or encoder.workers < 2:
        meanwhile()
        for batch in batches:
            yield batch, encoder.encode(batch)
        return
    workers, read_all = encoder.workers, threading.Event()

    def encode(batch: Batch, first: bool = False) -> Encoded:  # its threads chosen as it starts
        return encoder.encode(batch, workers if first or read_all.is_set() else 1)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="tinyllm-encode")
    try:
        jobs = deque()
        batch = next(batches, None)
        if batch is not None:
            jobs.append((batch, pool.submit(encode, batch, True)))
            batch = next(batches, None)
        meanwhile()
        while batch is not None:
            nxt = next(batches, None)  # read before `batch` is queued: is it the last?
            if nxt is None:
                read_all.set()
            jobs.append((batch, pool.submit(encode, batch)))
            batch = nxt
            if len(jobs) > DEPTH * workers:
                done, job = jobs.popleft()
                yield done, job.result()
        while jobs:
            done, job = jobs.popleft()
            yield done, job.result()
    finally:  # on an error or Ctrl-C the queued batches are dropped, the running ones finish
        pool.shutdown(wait=True, cancel_futures=True)


def encode_into(
    writers: dict,
    encoder: Encoder,
    it: Iterator[Batch],
    total: tuple[int, str],
    sources,
    progress: bool,
    meanwhile: Callable[[], object] = lambda: None,
) -> str:
    """Encode every batch and write each document to its split's shards; -> the sample prompt
    (the first words of the first val document). On any error the open shards are discarded.
    meanwhile: as encoded_ahead's."""
    from tqdm import tqdm

    bar = tqdm(
        total=total[0],
        unit=total[1],
        unit_scale=total[1] == "B",
        desc=f"tokenizing ({encoder.name})",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    sample_prompt, exc = "", None
    try:
        ahead = encoded_ahead(encoder, it, meanwhile)
        with contextlib.closing(ahead) as stream:  # an error here stops the helper threads now, not at GC
            # read ahead until WHOLE_DOCS documents: a corpus of fewer is split document by document
            # (split_documents' rule for it), which needs its count before the first is written
            seen, n, chars, whole = [], 0, 0, True
            for batch, enc in stream:
                seen.append((batch, enc))
                n, chars = n + enc.n, chars + enc.chars
                if n >= WHOLE_DOCS or chars >= WHOLE_CHARS:
                    whole = False
                    break
            if n == 0 and whole:
                raise TinyLLMError(f"{', '.join(map(str, sources))}: corpus is empty (no non-blank text)")
            flags_whole = split_flags(True, 0, n) if whole else []
            start = 0
            for batch, enc in itertools.chain(seen, stream):
                if whole:
                    runs = [(f, len(list(r))) for f, r in itertools.groupby(flags_whole[start : start + enc.n])]
                else:
                    runs = block_runs(start, enc.n)
                k = 0
                for split, m in runs:  # documents k .. k+m-1 all go to this split: written as one run
                    for name in ("train", "val") if split == "both" else (split,):
                        writers[name].write_documents(enc.ids, enc.offsets[k : k + m + 1])
                    if split != "train" and not sample_prompt:
                        sample_prompt = " ".join(enc.document(k).split()[:4])
                    k += m
                start += enc.n
                bar.update(batch.nbytes)
    except BaseException as e:
        exc = e
        raise
    finally:
        bar.close()
        for w in writers.values():
            w.close(exc)
    return sample_prompt


def save_tokenizer(tok, set_dir: Path) -> str:
    """The set's tokenizer file; -> its hash, for meta.json."""
    from .token_files import tokenizer_hash

    tok.save(set_dir / "tokenizer.txt")
    return tokenizer_hash(tok)


def write_set(
    out: Path,
    name: str,
    tok,
    tok_hash: str,
    writers: dict,
    sources,
    shard_tokens: int,
    encoder_name: str,
    sample_prompt: str,
) -> dict:
    """Write meta.json (one rename: it switches readers from the old set to this one), the set's
    shards and tokenizer (save_tokenizer, tok_hash its hash) being complete."""
    from .token_files import write_meta

    train, val = writers["train"], writers["val"]
    if not train.tokens:
        raise TinyLLMError(f"{', '.join(map(str, sources))}: no training documents")
    if not val.tokens:  # fewer than 450 documents in a big corpus: validate on training text
        print(
            "warning: no validation documents (the corpus has too few); validating on the training shards",
            file=sys.stderr,
        )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": train.dtype.name,
        "vocab_size": tok.vocab_size,
        "tokenizer": f"{name}/tokenizer.txt",
        "tokenizer_hash": tok_hash,
        "sources": [str(s) for s in sources],
        "train_shards": train.shards,
        "val_shards": val.shards or train.shards,
        "train_tokens": train.tokens,
        "val_tokens": val.tokens or train.tokens,
        "train_documents": train.documents,
        "val_documents": val.documents,
        "shard_checks": {**train.checks, **val.checks},
        "shard_tokens": shard_tokens,
        "encoder": encoder_name,
        "sample_prompt": sample_prompt,
    }
    write_meta(out / "meta.json", meta)
    return meta


def current_set_is(out: Path, name: str) -> bool:
    from .shards import read_prepared_meta

    try:
        meta = read_prepared_meta(out)
    except TinyLLMError:
        return False
    return bool(meta) and str(meta.get("tokenizer", "")).startswith(f"{name}/")


def retire_old_sets(out: Path, name: str, tok) -> None:
    """After the switch: a copy of the tokenizer where people look for it, and the older sets,
    interrupted sets and flat-layout shards that prepare wrote, deleted. Best effort: the new set is
    complete and in use already, so a failure here is a warning, and the next prepare tries again."""
    from .shards import is_shard_set_name

    try:
        tok.save(out / "tokenizer.txt")
        for old in out.iterdir():
            if old.name != name and is_shard_set_name(old.name):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    except OSError as e:
        print(
            f"warning: {out}: could not remove an older shard set ({e.strerror or e}); the new set is in use",
            file=sys.stderr,
        )
