"""From a corpus to token datasets: pick the source, train or load the tokenizer,
tokenize once into memmapped train/val files, and reuse them on the next run."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .corpus import BIBLE, load_documents
from .qa import is_qa_file, load_qa
from .tokens import TokenDataset, read_meta, read_tokens, token_dtype, tokenizer_hash, write_meta, write_tokens

VAL_EVERY = 10  # one block of documents in ten goes to validation
BLOCK = 50      # documents per block: the split never cuts a document, and val spans the whole corpus


@dataclass
class Corpus:
    """Documents of one source, and whether they are Q&A pairs."""
    name: str
    documents: list[str]
    is_qa: bool = False

    def tokenizer_texts(self) -> list[str]:
        """Text to train a tokenizer on: the documents with special-token markup removed."""
        if not self.is_qa:
            return self.documents
        return [d.replace("<BOS> ", "").replace(" <EOS>", "") for d in self.documents]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for d in self.documents:
            h.update(d.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:16]


def load_corpus(source: str | Path | None) -> Corpus:
    """'bible' (default), a Q&A .json/.jsonl file, a text file or a folder of .txt files."""
    source = BIBLE if source in (None, "", BIBLE) else source
    if source != BIBLE and is_qa_file(source):
        return Corpus(str(source), [p.text() for p in load_qa(source)], is_qa=True)
    return Corpus(str(source), load_documents(source))


def split_documents(docs: list, val_every: int = VAL_EVERY, block: int = BLOCK, keep_all: bool = False):
    """Deterministic train/val split by blocks of documents (every val_every-th block is val).

    Small corpora (fewer than 2 blocks' worth) use single documents as blocks; one too small
    for that to give a val document (2 .. val_every-1 documents) holds out its last document,
    unless keep_all (Q&A: every pair of a tiny set must be learned), which validates on it
    while training on it too.
    """
    if len(docs) < 2:
        return docs, docs  # nothing to hold out: validate on the training text
    if len(docs) < 2 * block * val_every:
        block = 1
    train, val = [], []
    for i, d in enumerate(docs):
        (val if (i // block) % val_every == val_every - 1 else train).append(d)
    if not val:
        if keep_all:
            return list(docs), list(docs[-1:])
        train, val = docs[:-1], docs[-1:]  # never overlapping: val must not measure memorisation
    return train, val


def tokenize_documents(tokenizer, docs: list[str], desc: str, chunk: int = 2048):
    """Yield id lists for the documents, in order, encode_batch'ed chunk by chunk."""
    with tqdm(total=len(docs), desc=desc, unit="doc", file=sys.stderr, leave=False,
              disable=len(docs) < chunk) as bar:
        for i in range(0, len(docs), chunk):
            batch = docs[i:i + chunk]
            for ids in tokenizer.encode_batch(batch):
                yield ids
            bar.update(len(batch))


def build_token_files(corpus: Corpus, tokenizer, data_dir: str | Path, context_length: int):
    """Tokenize the corpus into data_dir/{train,val}.bin (reused when the corpus and
    tokenizer are unchanged) and return (train_ds, val_ds, meta)."""
    data_dir = Path(data_dir)
    key = {"corpus": corpus.name, "corpus_hash": corpus.fingerprint(), "tokenizer_hash": tokenizer_hash(tokenizer),
           "vocab_size": tokenizer.vocab_size, "dtype": token_dtype(tokenizer.vocab_size).name}
    meta_path = data_dir / "meta.json"
    meta = read_meta(meta_path) if meta_path.exists() else {}
    if {k: meta.get(k) for k in key} != key:
        train_docs, val_docs = split_documents(corpus.documents)
        meta = dict(key)
        for split, docs in (("train", train_docs), ("val", val_docs)):
            meta[f"{split}_tokens"] = write_tokens(
                data_dir / f"{split}.bin", tokenize_documents(tokenizer, docs, f"tokenizing {split}"),
                tokenizer.vocab_size)
            meta[f"{split}_documents"] = len(docs)
        write_meta(meta_path, meta)
    train = read_tokens(data_dir / "train.bin", meta["dtype"])
    val = read_tokens(data_dir / "val.bin", meta["dtype"])
    return (TokenDataset(train, context_length, f"{corpus.name} (train split)"),
            TokenDataset(val, context_length, f"{corpus.name} (val split)"), meta)


def train_tokenizer(corpus: Corpus, vocab_size: int, show_progress: bool = True):
    from ..tokenizer import Tokenizer

    texts = corpus.tokenizer_texts()
    return Tokenizer.train(texts, vocab_size=vocab_size, show_progress=show_progress)
