"""The run's data, built in one place: corpus -> tokenizer -> train/val datasets.

    data = build_datasets(run, context_length, out_dir, dist)   # -> Datasets(train, val, tokenizer, ...)

Sources: a folder of shards from `tinyllm prepare` (memmapped as they are), a Q&A file
(pairs packed into rows, data/packed.py), or a text corpus (tokenized once into
out_dir/data/{train,val}.bin, reused while the cache key matches, data/tokens.py). The
tokenizer is the checkpoint's when resuming or fine-tuning, else --tokenizer, else the one
cached in out_dir (same key), else one trained on the corpus. Under torchrun rank 0
decides the tokenizer and sends it to the others through the process group (out_dir may
not be on a disk they share).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.corpus import Corpus, load_corpus, split_documents
from ..data.formats import ReadOptions
from ..data.shards import is_prepared_dir, load_prepared, refuse_incomplete
from ..data.tokens import build_token_files, cache_key, tokenizer_hash
from ..errors import TinyLLMError
from ..io import atomic_open
from . import distributed as dist_utils


@dataclass
class Datasets:
    """What the trainer samples from, and the tokenizer that encoded it."""

    train: object
    """TokenDataset (text, shards) or PackedQADataset (Q&A); both have sample(gen, B, part, parts)."""
    val: object
    tokenizer: object
    is_qa: bool
    sample_prompt: str
    """The first words of the first val document: what the end-of-training sample continues."""


def build_datasets(
    run, context_length: int, out: Path, dist, tokenizer=None, tokenizer_source: str = "", log=print
) -> Datasets:
    """tokenizer: the checkpoint's (resume / --init_from), which the data must be encoded with;
    tokenizer_source says which, for messages."""
    cfg, T = run.train, context_length
    if cfg.data:
        refuse_incomplete(cfg.data)  # shards without meta.json: an interrupted prepare
    if cfg.data and is_prepared_dir(cfg.data):  # shards from `tinyllm prepare`: memmapped, never loaded
        train, val, meta, tok = load_prepared(cfg.data, T, cfg.tokenizer)
        if tokenizer is not None and meta.get("tokenizer_hash") not in (None, tokenizer_hash(tokenizer)):
            raise TinyLLMError(
                f"{cfg.data} was encoded with another tokenizer than {tokenizer_source}'s; run "
                "`tinyllm prepare` again with that tokenizer"
            )
        tok = tokenizer or tok
        if dist.is_main:
            tok.save(out / "tokenizer.txt")
        return Datasets(train, val, tok, False, meta.get("sample_prompt", ""))

    corpus = load_corpus(
        cfg.data, list(run.qa_pairs) if run.qa_pairs is not None else None, ReadOptions(cfg.text_field, cfg.bad_records)
    )
    tok = run_tokenizer(corpus, run, out, dist, tokenizer, log) if dist.is_main else None
    # through the process group, not the file: other nodes may not share out_dir's disk
    tok = tokenizer_from_main(tok, dist)
    if corpus.is_qa:
        from ..data.packed import PackedQADataset

        train_pairs, val_pairs = split_documents(corpus.pairs, keep_all=True)
        return Datasets(
            PackedQADataset(train_pairs, tok, T, cfg.loss_on, f"{cfg.data} (train)"),
            PackedQADataset(val_pairs, tok, T, cfg.loss_on, f"{cfg.data} (val)"),
            tok,
            True,
            "",
        )
    train, val = token_datasets(corpus, tok, out / "data", T, dist)
    _, val_docs = split_documents(corpus.documents)
    return Datasets(train, val, tok, False, " ".join(val_docs[0].split()[:4]) if val_docs else "")


def run_tokenizer(corpus: Corpus, run, out: Path, dist, tokenizer, log):
    """Rank 0: the tokenizer of this run, saved to out/tokenizer.txt."""
    from ..tokenizer import Tokenizer

    cfg = run.train
    tok_file, tok_key_file = out / "tokenizer.txt", out / "tokenizer.json"
    key = None  # the cache key of a tokenizer trained here, recorded once it is saved
    if tokenizer is not None:
        tok = tokenizer
    elif cfg.tokenizer:
        tok = Tokenizer.load(cfg.tokenizer)
    else:
        key = cache_key(corpus, run.model.vocab_size)
        if tok_file.exists() and tok_key_file.exists() and json.loads(tok_key_file.read_text()) == key:
            tok, key = Tokenizer.load(tok_file), None
        else:
            t0 = time.perf_counter()
            tok = Tokenizer.train(corpus.tokenizer_texts(), vocab_size=run.model.vocab_size, show_progress=cfg.progress)
            log(f"trained a {tok.vocab_size}-token BPE tokenizer in {time.perf_counter() - t0:.1f}s")
    tok.save(tok_file)
    if key is not None:  # after the file it describes: a crash in between retrains, never misreuses
        with atomic_open(tok_key_file) as f:
            json.dump(key, f)
    return tok


def tokenizer_from_main(tok, dist):
    """Rank 0's tokenizer on every rank."""
    from ..tokenizer import Tokenizer

    text = dist_utils.broadcast_object(tok.to_str() if dist.is_main else None, dist)
    return tok if dist.is_main else Tokenizer.from_str(text)


def token_datasets(corpus: Corpus, tok, data_dir: Path, T: int, dist):
    """Rank 0 tokenizes, then the first rank of each other node (it finds the files already there
    when out_dir is a shared disk), then every rank memmaps them; a rank that built (or checked)
    the files keeps the datasets it got, so the corpus is hashed once per rank at most."""
    built = build_token_files(corpus, tok, data_dir, T) if dist.is_main else None
    dist_utils.barrier(dist)
    if dist.local_rank == 0 and not dist.is_main:
        built = build_token_files(corpus, tok, data_dir, T)
    dist_utils.barrier(dist)
    train, val, _ = built or build_token_files(corpus, tok, data_dir, T)
    return train, val
