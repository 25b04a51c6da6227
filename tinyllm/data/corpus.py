"""A text corpus: where its text comes from, how it is cut into documents, and the
train/val split.

Sources: the King James Bible shipped by `pybible` (`bible`, the offline default), a corpus
file (.txt, JSON Lines, Parquet, or .gz/.zst-compressed text or JSON Lines: data/formats.py),
a folder of them (any mix), or a Q&A .json/.jsonl file (data/qa.py). Every file reads as the
text file it stands for (a JSON Lines / Parquet record is its text plus a blank line). A
document is a paragraph (text between blank lines) plus "\n\n": the unit the train/val split
never cuts through. `load_documents` reads whole files; `stream_text_blocks` streams one file in
blocks of whole paragraphs (`tinyllm prepare`, whose C++ encoder cuts them: csrc/paragraphs.h) and
`stream_document_blocks` those blocks' documents, exactly the same documents.
"""

from __future__ import annotations

import collections
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TinyLLMError, warn_once
from . import formats
from .formats import DEFAULT, ReadOptions

if TYPE_CHECKING:
    from ..tokenizer.inputs import OpenBlock

BIBLE = "bible"
_VERSE_REF = re.compile(r"^\d+:\d+:\d+ ")  # pybible's "BB:CCC:VVV " prefix
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # what separates documents
READ_BLOCK = formats.READ_BLOCK  # bytes stream_document_blocks reads at a time
STREAM_READ = 1 << 20  # ... and stream_paragraphs: the counting threads start after one such read
OPEN_AFTER = 4 * STREAM_READ  # ... which cuts a paragraph open once this much of it is held
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
    """A corpus file as given, or every corpus file (.txt, .jsonl, .parquet, .gz/.zst: formats.is_corpus_file)
    under a folder, sorted; errors name the path."""
    p = Path(path)
    if not p.exists():
        raise TinyLLMError(f"{p}: no such file or directory")
    if p.is_dir():
        files = formats.folder_files(p)
        if not files:
            raise TinyLLMError(f"{p}: directory holds no .txt files or other corpus files (.jsonl, .parquet, .gz/.zst)")
        return files
    if not p.is_file():  # a FIFO would block forever, /dev/zero would fill the memory
        raise TinyLLMError(f"{p}: not a regular file (a device, pipe or socket); pass a file or a folder of files")
    formats.kind_of(p)  # an unsupported compression fails here, before anything is read
    return [p]


def normalize_newlines(text: str) -> str:
    """ "\r\n" and lone "\r" -> "\n", so CRLF (and old-Mac) files split like LF files."""
    # one fast scan: the two replaces took 4.1 ms a 4 M-character block with nothing to replace, this 0.11
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, options: ReadOptions = DEFAULT) -> str:
    """A file's text (any format, data/formats.py): a leading UTF-8 BOM dropped, newlines
    normalised to "\n". Bytes that are not UTF-8 become U+FFFD with one warning per file
    (a file cut mid-character still trains); binary data and unreadable files are an error
    naming the file."""
    return normalize_newlines(formats.read_text(path, options))


def _paragraphs(text: str) -> Iterator[str]:
    # paragraphs keep the split fine-grained without cutting sentences
    return (par + "\n\n" for par in PARAGRAPH_BREAK.split(text) if par.strip())


def load_documents(source: str | Path, options: ReadOptions = DEFAULT) -> list[str]:
    """Documents of a text corpus: Bible verses, or the paragraphs of each file.

    A document is a unit the train/val split never cuts through.
    """
    if str(source) == BIBLE:
        return [v + "\n" for v in bible_verses()]
    docs: list[str] = []
    for f in text_files(source):
        docs.extend(_paragraphs(read_text(f, options)))
    if not docs:
        raise TinyLLMError(f"{source}: corpus is empty (no non-blank text)")
    return docs


def stream_text_blocks(
    path: Path, options: ReadOptions = DEFAULT, block: int | None = None
) -> Iterator[tuple[str, int]]:
    """One file's text streamed in blocks of whole documents -> (text all of whose paragraphs are
    complete, file bytes read since the last block). `paragraphs(text)` of the blocks, in turn, are
    exactly `load_documents`'s documents (invalid UTF-8 becomes U+FFFD); the file is read `block`
    bytes at a time (READ_BLOCK); a block may hold no document and stand only for the bytes read.
    A block ends at the last paragraph break of the text read so far that more text cannot lengthen
    (trailing whitespace may grow into a longer break), found by searching back from the end
    (last_break_end), so a long paragraph spanning many reads is never rescanned from its start."""
    text, unread, cr, lo = "", 0, "", 0
    for chunk, raw in formats.read_chunks(path, options, block or READ_BLOCK):
        unread += raw
        if cr:
            chunk = cr + chunk
        cr = "\r" if chunk.endswith("\r") else ""  # its "\n" may be in the next chunk
        text += normalize_newlines(chunk[:-1] if cr else chunk)  # (no copy of the chunk when text is "")
        end = len(text)
        while end and text[end - 1].isspace():  # text[end - 1] is not whitespace: no break can straddle it
            end -= 1
        cut = last_break_end(text, lo, end)
        if cut < 0:
            lo = max(0, end - 1)  # the next break, if any, starts after this character
            continue
        yield text[:cut], unread
        text, unread, lo = text[cut:], 0, 0
    text += normalize_newlines(cr)
    if text or unread:
        yield text, unread


# A place where a file's bytes can be cut between documents without decoding them: the end of a run of
# line-break bytes that holds two or more line breaks, followed by a character that is not whitespace,
# with at most whitespace but no line break between (_opens_paragraph). In the decoded, normalised
# text that is where a paragraph break ends (its last "\n"), so the paragraphs of the two sides are
# those of the whole. A run of "\r" and "\n" holds two or more breaks exactly when it holds one of
# these pairs (else it is "\n", "\r" or "\r\n").
BREAK_PAIRS = (b"\n\n", b"\r\r", b"\n\r")
_ASCII_SPACE = frozenset(b" \t\x0b\x0c\x1c\x1d\x1e\x1f")  # str.isspace's ASCII, less "\n" and "\r"


def _opens_paragraph(data: bytearray, q: int) -> bool:
    """Whether data[q:] holds whitespace without a line break, then a character that is not whitespace
    (a paragraph starting with CJK or indented is as common as one starting with ASCII: cutting only
    before ASCII left such files one block, all in memory). False when data ends first, or on a byte
    sequence that is not UTF-8 (no cut there: the block is decoded as a whole)."""
    n = len(data)
    while q < n:
        c = data[q]
        if c < 0x80:
            if c in _ASCII_SPACE:
                q += 1
                continue
            return c not in b"\r\n"
        k = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
        if c < 0xC2 or q + k > n:
            return False
        try:
            ch = bytes(data[q : q + k]).decode()
        except UnicodeDecodeError:
            return False
        if not ch.isspace():
            return True
        q += k
    return False


def stream_raw_text_blocks(
    path: Path, block: int | None = None, options: ReadOptions = DEFAULT, open_after: int | None = None
) -> Iterator[tuple[bytes | str | OpenBlock, int]]:
    """stream_text_blocks of a text file (any compression) or Parquet file, but a block that is valid UTF-8
    comes as its bytes ("\r" newlines normalised in them), not decoded (the C++ encoder cuts and encodes
    UTF-8 as it would the str, and needs no UTF-8 of its own made from the str: prepare of 52 MB was
    1.11x / 1.21x faster on 1 / 2 workers, side by side with the decoded blocks).
    Other blocks come decoded and normalised as stream_text_blocks makes them, with the same
    warning for invalid UTF-8. A block ends at the last cut (BREAK_PAIRS) of what was read, found by
    searching back from the end, so `paragraphs` of the blocks, in turn, are load_documents's.
    open_after (for tokenizer training): once this much is held with no cut, a paragraph is cut open
    (last_open_cut) and what comes before the cut is an OpenBlock, so a text with no blank line (one
    document per line) is not held whole. Its pieces are then not documents: prepare never asks."""
    from .._bpe import utf8_valid
    from ..tokenizer.inputs import OpenBlock, warn_invalid_utf8

    pending, unread, lo, replaced = bytearray(), 0, 0, 0
    open_lo = 1  # where last_open_cut searches from: before it, pending has no open cut

    jsonl = formats.kind_of(path).format == "jsonl"

    def item(data: bytes) -> bytes | str:
        nonlocal replaced
        if utf8_valid(data):  # "\r" is never part of a longer UTF-8 sequence: normalised as bytes
            return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data
        if jsonl:  # valid but for lone surrogates of records (read_jsonl_utf8): the texts as read
            return normalize_newlines(data.decode("utf-8", "surrogatepass"))
        text, bad = formats.decode_counted(data)
        replaced += bad
        return normalize_newlines(text)

    read = formats.read_jsonl_utf8 if jsonl else formats.read_utf8
    for data, raw in read(path, options, block or READ_BLOCK):
        pending += data
        unread += raw
        cut = last_bytes_cut(pending, lo)
        if cut < 0:
            lo = max(0, len(pending) - 8)  # a cut found later ends after this (or in a run straddling it)
            if open_after is None or len(pending) < open_after:
                continue
            cut = last_open_cut(pending, open_lo)
            open_lo = max(1, len(pending) - 5)  # (the last characters may not be whole yet)
            if cut < 0:
                continue
            yield OpenBlock(item(bytes(memoryview(pending)[:cut]))), unread
            del pending[:cut]
            unread, lo, open_lo = 0, max(0, len(pending) - 8), max(1, len(pending) - 5)
            continue
        yield item(bytes(memoryview(pending)[:cut])), unread
        del pending[:cut]
        unread, lo, open_lo = 0, 0, 1
    if pending or unread:
        yield item(bytes(pending)), unread
    if replaced:
        warn_invalid_utf8(path, replaced)


def text_blocks(
    path: Path, options: ReadOptions = DEFAULT, block: int | None = None, open_after: int | None = None
) -> Iterator[tuple[str | bytes | OpenBlock, int]]:
    """One file's text in blocks of whole paragraphs for the C++ cutters (encode_paragraphs_flat,
    Trainer.add_paragraphs): as bytes where they are valid UTF-8 (stream_raw_text_blocks: no decoding on
    the reading thread; JSON Lines lines parsed in C++ where they can be, formats.read_jsonl_utf8), as str
    otherwise, and all as str for JSON Lines without orjson (whose paragraphs are no longer than a
    record's text: open_after, as in stream_raw_text_blocks, is not needed there)."""
    if formats.kind_of(path).format == "jsonl" and not formats.has_orjson():
        return stream_text_blocks(path, options, block)
    return stream_raw_text_blocks(path, block, options, open_after)


def stream_paragraphs(source: str | Path, options: ReadOptions = DEFAULT):
    """A corpus file or folder as tokenizer training input (tokenizer.Paragraphs): the documents
    load_documents reads, streamed a block at a time, never all in memory. Every file is checked
    first (a missing column, a binary file), so none fails after the files before it were counted."""
    from ..tokenizer.inputs import Paragraphs

    files = text_files(source)
    for f in files:
        formats.precheck(f, options)
    return Paragraphs((b for f in files for b, _ in text_blocks(f, options, STREAM_READ, OPEN_AFTER)), name=str(source))


def last_bytes_cut(data: bytearray, lo: int) -> int:
    """Where the last cut (see BREAK_PAIRS) of data whose run starts at or after lo is, or -1: the
    pairs searched for back from the end (rfind, no regex) in a window at the end, widened until it
    finds one or reaches lo (a pair a file never has, "\r\r" in most, then costs a window, not the block)."""
    n, span = len(data), BREAK_WINDOW
    while True:
        a = max(lo, n - span)
        end = n
        last = {p: data.rfind(p, a, end) for p in BREAK_PAIRS}
        while (i := max(last.values())) >= 0:
            q = i + 2
            while q < n and data[q] in b"\r\n":
                q += 1
            if _opens_paragraph(data, q):
                return q
            end = i + 1  # a cut before this run: the pairs that start before i
            for p, at in last.items():
                if at + 2 > end:
                    last[p] = data.rfind(p, a, end)
        if a == lo:
            return -1
        span *= 8


def last_open_cut(data: bytearray, lo: int) -> int:
    """Where the last place p >= max(lo, 1) is at which a paragraph can be cut open
    (tokenizer.inputs.is_open_cut: a space or "\n" after a letter, before a character that is not
    whitespace), or -1: the spaces and newlines tried back from the end."""
    from ..tokenizer.inputs import is_open_cut

    lo, end = max(lo, 1), len(data) - 1  # (the character after p must be there)
    last = {c: data.rfind(c, lo, end) for c in (b" ", b"\n")}
    while (p := max(last.values())) >= 0:
        if is_open_cut(data, p):
            return p
        c = b" " if data[p] == 0x20 else b"\n"
        last[c] = data.rfind(c, lo, p)
    return -1


BREAK_WINDOW = 1 << 16  # characters last_break_end searches first (then 8x more, and so on)


def last_break_end(text: str, lo: int, end: int) -> int:
    """Where the last paragraph break (PARAGRAPH_BREAK match) of text[:end] that ends after lo ends,
    or -1 if there is none; text[lo] is not whitespace (or lo is 0). A break is the stretch of one
    whitespace run from its first "\n" to its last, so the regex finds in text[a:end], for any a, only
    breaks that end where a break of text[:end] ends, and misses at most one that straddles a: the
    search looks in a window at the end, widened until it finds one or reaches lo."""
    span = BREAK_WINDOW
    while True:
        a = max(lo, end - span)
        last = collections.deque(PARAGRAPH_BREAK.finditer(text, a, end), maxlen=1)
        if last:
            return last[0].end()
        if a == lo:
            return -1
        span *= 8


def paragraphs(text: str | bytes) -> list[str]:
    """The documents of a text whose paragraphs are complete (a block of stream_text_blocks, or of
    stream_raw_text_blocks: bytes are valid UTF-8 without "\r")."""
    return list(_paragraphs(text.decode() if isinstance(text, bytes) else text))


def stream_document_blocks(path: Path, options: ReadOptions = DEFAULT) -> Iterator[tuple[list[str], int]]:
    """The documents of one file, streamed by the block read -> (the documents of a block, file bytes
    read for it): stream_text_blocks cut into documents. Documents are exactly `load_documents`'s. One
    regex split and one list per block, not a Python step per document, which made reading, not
    encoding, the bound of `tinyllm prepare`."""
    for text, n in stream_text_blocks(path, options):
        yield paragraphs(text), n


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


def load_corpus(source: str | Path | None, qa_pairs: list | None = None, options: ReadOptions = DEFAULT) -> Corpus:
    """'bible' (default), a Q&A .json/.jsonl file, a corpus file or a folder of them (data/formats.py).
    qa_pairs: the pairs of a Q&A source already parsed (resolve_run did), not read again.
    options: the text field and bad-record policy of JSON Lines / Parquet files."""
    from .qa import is_qa_file, load_qa

    source = BIBLE if source in (None, "", BIBLE) else source
    if qa_pairs is None and source != BIBLE and is_qa_file(source):
        qa_pairs = load_qa(source)
    if qa_pairs is not None:
        return Corpus(str(source), [p.text() for p in qa_pairs], pairs=qa_pairs)
    return Corpus(str(source), load_documents(source, options))


def split_documents(docs: list, val_every: int = VAL_EVERY, block: int = BLOCK, keep_all: bool = False):
    """Deterministic train/val split by blocks of documents (every val_every-th block is val).

    Small corpora (fewer than 2 blocks' worth) use single documents as blocks; one too small
    for that to give a val document (2 .. val_every-1 documents) holds out its last document,
    unless keep_all (Q&A: every pair of a tiny set must be learned), which validates on it
    while training on it too.
    """
    if len(docs) < 2:
        warn_once(
            f"the corpus has only {len(docs)} document{'s' if len(docs) != 1 else ''} (paragraphs are split at blank "
            "lines): nothing to hold out, so validation uses the training text and measures memorisation"
        )
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
