"""Tokenizer training input: which files and texts, and how they are streamed.

`Tokenizer.train(files_or_texts)` takes a str (a text), a path (a file, or a directory
whose corpus files are read in sorted order), or an iterable mixing both. A file is plain
text (.txt), JSON Lines (.jsonl: the "text" field of each record), Parquet (.parquet: the
"text" column) or .gz/.zst-compressed text or JSON Lines (tinyllm/data/formats.py; a
record reads as its text followed by a blank line), and a directory may mix them. Files
are never read whole: they stream in blocks and are cut into segments at *safe cuts*.

A str is text, never a file name; a str that looks like one ("corpus.txt", "data/",
the name of an existing file) is refused rather than guessed at, because training on
the ten characters "corpus.txt" only ends in a warning much later. Pass a file as
pathlib.Path; wrap strings that are text whatever they look like (documents read from
files) in `Texts`, which skips the check. `path_like` is the rule.

Safe cut: a position p with a letter (\\p{L}) just before it and whitespace (\\s) at p.
The letter ends a letter-run pre-token under both split patterns (the run is possessive
and stops at the first non-letter), no pre-token looks behind, and no special token
contains whitespace, so splitting a document at p and pre-tokenizing the halves gives
exactly the pre-tokens of the whole. Streaming therefore never changes what is counted,
and the reference and the C++ core may pick different cuts (different block sizes) and
still count identically. A stretch with no safe cut (e.g. megabytes of digits) is held
in memory until one comes.

Invalid UTF-8 (a file cut mid-character, a stray Latin-1 byte) is not fatal: each
maximal invalid byte sequence becomes U+FFFD, exactly as `bytes.decode("utf-8",
"replace")` does, and one warning names the file and the count. Binary data (NUL bytes,
or mostly invalid UTF-8 in the first 64 KB: formats.sniff) is refused with an error.
"""

from __future__ import annotations

import codecs
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import regex

from ..errors import TinyLLMError

BLOCK_SIZE = 1 << 20  # bytes read from a file at a time

# The last safe cut in a string: searched backwards with the regex module's (?r) flag.
_LAST_SAFE_CUT = regex.compile(r"(?r)\p{L}(?=\s)")

# A decode error handler that replaces like "replace" and counts how often it fired.
_replacements = [0]


def _replace_and_count(err: UnicodeDecodeError):
    _replacements[0] += 1
    return "\ufffd", err.end


codecs.register_error("tinyllm.replace_and_count", _replace_and_count)


class CorpusWarning(UserWarning):
    """Something in the corpus was handled but the user should know (invalid UTF-8, vocab not reached)."""


class Texts:
    """Strings that are training text whatever they look like: `Tokenizer.train(Texts(docs))`
    (or an element of files_or_texts) skips `path_like`, for documents read from files, where
    a one-line paragraph "setup.py" is text. Holds the iterable, does not copy it.

    >>> resolve_item(Texts(["corpus.txt", "data/"]))
    [('text', 'corpus.txt'), ('text', 'data/')]
    """

    __slots__ = ("texts",)

    def __init__(self, texts: Iterable[str]):
        if isinstance(texts, (str, bytes, bytearray, os.PathLike)) or not isinstance(texts, Iterable):
            raise TinyLLMError(
                f"Texts: expected an iterable of str, got {type(texts).__name__}"
                + ("; use Texts([text]) for one text" if isinstance(texts, str) else "")
            )
        self.texts = texts

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """("text", str) for each string; anything else is an error naming its position."""
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise TinyLLMError(f"Texts: element {i} must be str, got {type(text).__name__}")
            yield "text", text


class Paragraphs:
    r"""Blocks of text whose documents are their paragraphs, as tinyllm.data.corpus cuts a corpus:
    the paragraphs between blank lines, blank ones dropped, each + "\n\n" (`paragraphs`). A block
    is a str, or bytes of valid UTF-8; its newlines are "\n" and no paragraph straddles two blocks
    (corpus.stream_text_blocks makes such blocks), except where a block is an `OpenBlock`: its last
    paragraph goes on in the next block. `tinyllm tokenizer train` streams a corpus in it and trains
    on the documents `tinyllm train` and `prepare` see, without a Python string per document (the
    C++ trainer cuts them: csrc/paragraphs.h). name: what an empty corpus's error names.

    >>> list(Paragraphs(["a\n\n\nb"], name="notes/"))
    [('paragraphs', ('notes/', 'a\n\n\nb', False))]
    """

    __slots__ = ("blocks", "name")

    def __init__(self, blocks: Iterable[str | bytes | OpenBlock], name: str = "the text blocks"):
        if isinstance(blocks, (str, bytes, bytearray, os.PathLike)) or not isinstance(blocks, Iterable):
            raise TinyLLMError(f"Paragraphs: expected an iterable of str or bytes blocks, got {type(blocks).__name__}")
        self.blocks, self.name = blocks, name

    def __iter__(self) -> Iterator[tuple[str, tuple[str, str | bytes, bool]]]:
        """("paragraphs", (name, block's text, whether it is open)) for each block; an OpenBlock whose
        cut is not one (is_open_cut) is an error naming it."""
        open_at = None  # the OpenBlock just before, whose paragraph this block must go on with
        for i, block in enumerate(self.blocks):
            is_open = type(block) is OpenBlock
            text = block.text if is_open else block
            if type(text) not in (str, bytes):
                raise TinyLLMError(f"Paragraphs: block {i} must be str or bytes, got {type(text).__name__}")
            if open_at is not None and not _goes_on_at(text, 0):
                raise TinyLLMError(
                    f"Paragraphs: block {open_at} is an OpenBlock, but block {i} does not go on with its paragraph"
                    " (it must start with a space or a newline, then a character that is not whitespace)"
                )
            if is_open and not _letter_before(text, len(text)):
                raise TinyLLMError(
                    f"Paragraphs: block {i} is an OpenBlock, but it does not end with a letter"
                    " (a paragraph is cut open only where pre-tokenization splits anyway: tokenizer.inputs.is_open_cut)"
                )
            open_at = i if is_open else None
            yield "paragraphs", (self.name, text, is_open)
        if open_at is not None:
            raise TinyLLMError(f"Paragraphs: block {open_at} is an OpenBlock, but no block goes on with its paragraph")


class OpenBlock(NamedTuple):
    r"""A Paragraphs block that ends inside its last paragraph, which the next block goes on with. The
    cut is one pre-tokenization makes anyway and no paragraph break can straddle (is_open_cut), so the
    two pieces count as the whole paragraph; the piece before it gets no "\n\n". A corpus without
    blank lines (one document per line) is one paragraph: corpus.stream_paragraphs cuts it so rather
    than hold it whole."""

    text: str | bytes


_LETTER = regex.compile(r"\p{L}")  # what the split patterns (and the C++ tables) call a letter


def _char_before(text: str | bytes | bytearray, p: int) -> str:
    """The character that ends text[:p] ("" at 0, or where the bytes there are not UTF-8)."""
    if isinstance(text, str):
        return text[p - 1] if p > 0 else ""
    j = p - 1
    while j > 0 and p - j < 4 and 0x80 <= text[j] < 0xC0:  # back over continuation bytes to the lead
        j -= 1
    try:
        return bytes(text[max(j, 0) : p]).decode()
    except UnicodeDecodeError:
        return ""


def _char_at(text: str | bytes | bytearray, p: int) -> str:
    """The character that starts text[p:] ("" at the end, or where the bytes there are not UTF-8)."""
    if isinstance(text, str):
        return text[p : p + 1]
    if p >= len(text):
        return ""
    c = text[p]
    try:
        return bytes(text[p : p + (1 if c < 0x80 else 2 if c < 0xE0 else 3 if c < 0xF0 else 4)]).decode()
    except UnicodeDecodeError:
        return ""


def _letter_before(text, p: int) -> bool:
    return _LETTER.fullmatch(_char_before(text, p)) is not None


def _goes_on_at(text, p: int) -> bool:
    after = _char_at(text, p + 1)
    return _char_at(text, p) in (" ", "\n") and after != "" and not after.isspace()


def is_open_cut(text: str | bytes | bytearray, p: int) -> bool:
    """Whether a paragraph may be cut before text[p] (an OpenBlock, then the rest): text[p] is a space
    or "\n" after a letter, the safe cut of the module docstring (no pre-token spans it), and before a
    character that is not whitespace, so no paragraph break spans it either and the rest's first
    paragraph is this one's tail."""
    return _letter_before(text, p) and _goes_on_at(text, p)


def paragraphs(block: str | bytes) -> list[str]:
    """The documents of a Paragraphs block that is not open (the reference cut: tinyllm.data.corpus.paragraphs)."""
    from ..data.corpus import paragraphs as cut

    return cut(block)


MAX_PATH_LIKE = 255  # a str longer than this (or of several lines) is always text
# Suffixes of corpus and data files: one word ending in one is a file name, not a text.
FILE_SUFFIXES = frozenset(
    {
        ".txt",
        ".text",
        ".md",
        ".rst",
        ".json",
        ".jsonl",
        ".ndjson",
        ".csv",
        ".tsv",
        ".xml",
        ".html",
        ".htm",
        ".log",
        ".parquet",
        ".arrow",
        ".gz",
        ".bz2",
        ".xz",
        ".zst",
        ".zip",
        ".tar",
    }
)
_PATH_START = regex.compile(r"(?:~|\.{1,2})?[/\\]\w|[A-Za-z]:[/\\]")  # /x ./x ../x ~/x (or \), C:\ C:/
_DIR_END = regex.compile(r"[\w.-][/\\]$")  # data/
_WHITESPACE = regex.compile(r"\s")


def path_like(text: str) -> str | None:
    """Why a str given as training text is a file or directory name, or None if it is text.

    Only a str of one line and at most MAX_PATH_LIKE characters is looked at. It is a path when
      - it names an existing file or directory (looked up only for one word, or a str with
        a path separator or a file suffix: a sentence costs no system call), or
      - it is one word (no whitespace) and ends in a file suffix (FILE_SUFFIXES), starts
        like a path (/x, ./x, ../x, ~/x, C:\\), ends in a separator (data/), or has a
        separator after an existing directory (data/bible, when data/ exists).
    A document is almost never one short word of that shape; to train on one anyway,
    pass it in `Texts`.

    >>> [path_like(s) for s in ("corpus.txt", "corpus_dir/", "/nowhere/x", "hello", "and/or", "see notes.txt")]
    ['looks like a file name', 'looks like a path', 'looks like a path', None, None, None]
    """
    if not text or len(text) > MAX_PATH_LIKE or "\n" in text or "\r" in text:
        return None
    one_word = _WHITESPACE.search(text) is None
    has_sep = "/" in text or "\\" in text
    has_suffix = os.path.splitext(text)[1].lower() in FILE_SUFFIXES
    if one_word or has_sep or has_suffix:
        if os.path.isdir(text):  # isdir/exists are False (not an error) for NUL, lone surrogates, long names
            return "names an existing directory"
        if os.path.exists(text):
            return "names an existing file"
    if not one_word:
        return None
    if has_suffix:
        return "looks like a file name"
    if has_sep:
        parent = os.path.dirname(text)
        if _PATH_START.match(text) or _DIR_END.search(text) or (parent and os.path.isdir(parent)):
            return "looks like a path"
    return None


def resolve_item(item) -> list[tuple[str, object]]:
    """One element of `files_or_texts` as a list of ("text", str) / ("file", Path).

    >>> resolve_item("hello")
    [('text', 'hello')]
    """
    if isinstance(item, str):
        why = path_like(item)
        if why:
            raise TinyLLMError(
                f"files_or_texts: {item!r} {why}, but a str is training text, not a path; pass "
                f"pathlib.Path({item!r}) to train on a file (or on a directory's .txt files), or "
                f"tinyllm.tokenizer.Texts([...]) for strings that are text"
            )
        return [("text", item)]
    if isinstance(item, (Texts, Paragraphs)):
        return list(item)
    if isinstance(item, os.PathLike):
        path = Path(item)
        if path.is_dir():
            files = formats().folder_files(path)
            if not files:
                raise TinyLLMError(
                    f"corpus directory {path} contains no .txt files or other corpus files (.jsonl, .parquet, .gz/.zst)"
                )
            return [("file", p) for p in files]
        if not path.exists():
            raise TinyLLMError(f"corpus file {path} does not exist")
        if not path.is_file():
            raise TinyLLMError(f"corpus path {path} is not a regular file or a directory")
        if not os.access(path, os.R_OK):
            raise TinyLLMError(f"corpus file {path} is not readable (permission denied)")
        formats().kind_of(path)  # an unsupported compression (.bz2, .zip, ...) fails before any counting
        return [("file", path)]
    if isinstance(item, (bytes, bytearray)):
        raise TinyLLMError("files_or_texts: got bytes; pass text as str, or a pathlib.Path for a file")
    raise TinyLLMError(
        f"files_or_texts: expected str texts or pathlib.Path files/directories, got {type(item).__name__}"
    )


def iter_sources(files_or_texts) -> Iterator[tuple[str, object]]:
    """Yield ("text", str) / ("file", Path) / ("paragraphs", (name, block, open)) for everything to train on.

    A list or tuple is checked completely before anything is yielded, so a missing
    file fails in a second, not after an hour of counting; other iterables stream.
    """
    if isinstance(files_or_texts, (str, os.PathLike, bytes, bytearray)):
        yield from resolve_item(files_or_texts)
        return
    if isinstance(files_or_texts, (Texts, Paragraphs)):
        yield from files_or_texts  # streams, like any iterable that is not a list
        return
    if not isinstance(files_or_texts, Iterable):
        raise TinyLLMError(
            f"files_or_texts: expected a str, a path, or an iterable of them, got {type(files_or_texts).__name__}"
        )
    if isinstance(files_or_texts, (list, tuple)):
        resolved = [src for item in files_or_texts for src in resolve_item(item)]
        yield from resolved
        return
    for item in files_or_texts:
        yield from resolve_item(item)


def last_safe_cut(text: str) -> int:
    """Index p of the last safe cut in text (0 if none): text[:p] and text[p:] pre-tokenize
    independently to the same pieces as text.

    >>> last_safe_cut("one two  three")
    7
    """
    m = _LAST_SAFE_CUT.search(text)
    return m.end() if m else 0


def formats():
    """tinyllm.data.formats, imported when first needed (it imports this module)."""
    from ..data import formats as f

    return f


def is_plain_text(path: Path) -> bool:
    """A file the C++ trainer reads itself (add_file): uncompressed text; other formats stream through Python."""
    kind = formats().kind_of(path)
    return kind.format == "text" and kind.compression is None


def check_plain_text(path: Path) -> None:
    """Refuse binary data given as a text file (random bytes, an image) before counting it: one line."""
    try:
        with open(path, "rb") as f:
            head = f.read(formats().SNIFF_BYTES)
    except OSError as e:
        raise TinyLLMError(f"cannot read corpus file {path}: {e.strerror}") from None
    formats().check_text_head(path, head, formats().kind_of(path))


def iter_text_segments(texts: Iterable[str], block_size: int = BLOCK_SIZE) -> Iterator[str]:
    """Join a stream of text pieces and re-cut it at safe cuts, in segments of about block_size
    characters (the last may be shorter): the segments pre-tokenize exactly as the joined text.
    The cut is looked for in the newest piece only (its last safe cut is the stream's), so that a
    character is copied once, not again at every piece: those copies of multi-MB strs were a third
    of a JSON Lines file's reading time. Pieces without a cut of their own (tiny ones) are joined
    and searched whole once they pass 2 x block_size, which bounds the memory."""
    parts: list[str] = []
    size = 0
    for piece in texts:
        parts.append(piece)
        size += len(piece)
        if size < block_size:
            continue
        cut = last_safe_cut(piece)
        if not cut and size >= 2 * block_size:  # a cut may straddle pieces: search them joined
            parts = ["".join(parts)]
            cut = last_safe_cut(parts[0])
        if cut:
            last = parts.pop()
            parts.append(last[:cut])
            yield "".join(parts)
            parts, size = [last[cut:]], len(last) - cut
    if size:
        yield "".join(parts)


def iter_file_segments(path: Path, block_size: int = BLOCK_SIZE) -> Iterator[str]:
    """Stream a file as text segments that end at safe cuts; warn once if it had invalid UTF-8.
    Plain text is read here byte for byte as the C++ trainer reads it (a BOM stays U+FEFF); other formats
    through tinyllm/data/formats.py."""
    if not is_plain_text(path):
        yield from iter_text_segments((t for t, _ in formats().read_chunks(path)), block_size)
        return
    check_plain_text(path)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="tinyllm.replace_and_count")
    before = _replacements[0]
    carry = ""
    try:
        f = open(path, "rb")  # noqa: SIM115 - opened here to tell an open error from a read error; closed by the with below
    except OSError as e:
        raise TinyLLMError(f"cannot read corpus file {path}: {e.strerror}") from None
    with f:
        while True:
            try:
                block = f.read(block_size)
            except OSError as e:
                raise TinyLLMError(f"cannot read corpus file {path}: {e.strerror}") from None
            text = carry + decoder.decode(block, final=not block)
            if not block:
                if text:
                    yield text
                break
            cut = last_safe_cut(text)
            if cut:
                yield text[:cut]
            carry = text[cut:]
    replaced = _replacements[0] - before
    if replaced:
        warn_invalid_utf8(path, replaced)


def warn_invalid_utf8(path, replaced: int) -> None:
    warnings.warn(
        f"corpus file {path} is not valid UTF-8: {replaced} invalid byte sequence(s) read as U+FFFD",
        CorpusWarning,
        stacklevel=3,
    )


def seen_entry(kind: str, obj) -> tuple[str, object]:
    """What a training run notes of a source for its messages (describe_sources): a file's path, the name
    of a Paragraphs' blocks, nothing of a text."""
    return kind, obj if kind == "file" else obj[0] if kind == "paragraphs" else None


def source_size(kind: str, obj) -> int:
    """Bytes a source will contribute, for the progress bar (UTF-8 length of a text)."""
    if kind == "file":
        return obj.stat().st_size
    return len(obj.encode("utf-8", "surrogatepass"))


def describe_sources(sources: list[tuple[str, object]]) -> str:
    """'3 texts and 2 files (a.txt, b.txt)' for error messages."""
    texts = sum(1 for k, _ in sources if k == "text")
    files = [str(o) for k, o in sources if k == "file"]
    parts = list(dict.fromkeys(o for k, o in sources if k == "paragraphs"))  # Paragraphs' names
    if texts:
        parts.append(f"{texts} text{'s' if texts != 1 else ''}")
    if files:
        shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
        parts.append(f"{len(files)} file{'s' if len(files) != 1 else ''} ({shown})")
    return " and ".join(parts) or "nothing"
