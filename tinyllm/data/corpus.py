"""A text corpus: where its text comes from, how it is cut into documents, and the
train/val split.

Sources: the King James Bible shipped by `pybible` (`bible`, the offline default), a text
file, a folder of .txt files, or a Q&A .json/.jsonl file (data/qa.py). A document is a
paragraph (text between blank lines) plus "\n\n": the unit the train/val split never cuts
through. `load_documents` reads whole files; `stream_documents` streams one file in blocks
(`tinyllm prepare`) and yields exactly the same documents.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import TinyLLMError

BIBLE = "bible"
_VERSE_REF = re.compile(r"^\d+:\d+:\d+ ")  # pybible's "BB:CCC:VVV " prefix
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # what separates documents
READ_BLOCK = 8 << 20  # bytes stream_documents reads at a time
VAL_EVERY = 10  # one block of documents in ten goes to validation
BLOCK = 50  # documents per block: the split never cuts a document, and val spans the whole corpus


def bible_verses() -> list[str]:
    """The 31,102 verses of the KJV, without their "BB:CCC:VVV" references."""
    try:
        from pybible.Bible import Bible
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise TinyLLMError("the default corpus needs the 'pybible' package: pip install pybible") from e
    return [_VERSE_REF.sub("", v) for v in Bible]


def text_files(path: str | Path) -> list[Path]:
    """A .txt (or any) file, or every *.txt under a folder, sorted; errors name the path."""
    p = Path(path)
    if not p.exists():
        raise TinyLLMError(f"{p}: no such file or directory")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.txt") if f.is_file())
        if not files:
            raise TinyLLMError(f"{p}: directory holds no .txt files")
        return files
    return [p]


def normalize_newlines(text: str) -> str:
    """ "\r\n" and lone "\r" -> "\n", so CRLF (and old-Mac) files split like LF files."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path) -> str:
    """A file's text: a leading UTF-8 BOM dropped, newlines normalised to "\n". Bytes that
    are not UTF-8 become U+FFFD (a file cut mid-character still trains); unreadable files
    are an error naming the file."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from e
    return normalize_newlines(data.decode("utf-8-sig", errors="replace"))


def load_documents(source: str | Path) -> list[str]:
    """Documents of a text corpus: Bible verses, or the lines-blocks of each file.

    A document is a unit the train/val split never cuts through.
    """
    if str(source) == BIBLE:
        return [v + "\n" for v in bible_verses()]
    docs: list[str] = []
    for f in text_files(source):
        text = read_text(f)
        # paragraphs keep the split fine-grained without cutting sentences
        docs.extend(par + "\n\n" for par in PARAGRAPH_BREAK.split(text) if par.strip())
    if not docs:
        raise TinyLLMError(f"{source}: corpus is empty (no non-blank text)")
    return docs


def stream_documents(path: Path) -> Iterator[tuple[str, int]]:
    """The documents of one file, streamed -> (document, file bytes read since the last one).

    Documents are exactly `load_documents`'s + "\\n\\n" (invalid UTF-8 becomes
    U+FFFD); the file is read READ_BLOCK bytes at a time. A final ("", n) carries bytes read
    after the last document.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")  # as read_text: BOM dropped
    text, unread, cr = "", 0, ""
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(READ_BLOCK)
                unread += len(block)
                chunk = cr + decoder.decode(block, final=not block)
                cr = "\r" if block and chunk.endswith("\r") else ""  # its "\n" may be in the next block
                text += normalize_newlines(chunk[: len(chunk) - len(cr)])
                if not block:
                    break
                # cut before the last break that more text cannot lengthen (non-space follows it)
                end = len(text.rstrip())
                cut = None
                for m in PARAGRAPH_BREAK.finditer(text):
                    if m.end() < end:
                        cut = m
                if cut is None:
                    continue
                for par in PARAGRAPH_BREAK.split(text[: cut.start()]):
                    if par.strip():
                        yield par + "\n\n", unread
                        unread = 0
                text = text[cut.start() :]
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None
    for par in PARAGRAPH_BREAK.split(text):
        if par.strip():
            yield par + "\n\n", unread
            unread = 0
    if unread:
        yield "", unread


@dataclass
class Corpus:
    """The documents of one source; for Q&A data, also its pairs (parsed once per run)."""

    name: str
    documents: list[str]
    pairs: list | None = field(default=None, repr=False)
    """QAPair records when the source is a Q&A file, else None."""

    @property
    def is_qa(self) -> bool:
        return self.pairs is not None

    def tokenizer_texts(self):
        """Text to train a tokenizer on: the documents with special-token markup removed, marked as
        text (tokenizer.Texts), so a one-line document such as "setup.py" is never taken for a path."""
        from ..tokenizer.inputs import Texts

        if not self.is_qa:
            return Texts(self.documents)
        return Texts([d.replace("<BOS> ", "").replace(" <EOS>", "") for d in self.documents])

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the documents (computed once): with the tokenizer, the key of the token cache."""
        h = hashlib.sha256()
        for d in self.documents:
            h.update(d.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:16]


def load_corpus(source: str | Path | None, qa_pairs: list | None = None) -> Corpus:
    """'bible' (default), a Q&A .json/.jsonl file, a text file or a folder of .txt files.
    qa_pairs: the pairs of a Q&A source already parsed (resolve_run did), not read again."""
    from .qa import is_qa_file, load_qa

    source = BIBLE if source in (None, "", BIBLE) else source
    if qa_pairs is None and source != BIBLE and is_qa_file(source):
        qa_pairs = load_qa(source)
    if qa_pairs is not None:
        return Corpus(str(source), [p.text() for p in qa_pairs], pairs=qa_pairs)
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
