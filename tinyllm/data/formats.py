"""Corpus file formats: one reader per format, each turning a file into the text it stands for.

    plain text    .txt (and any text file named as such)     UTF-8, a leading BOM dropped
    JSON Lines    .jsonl, .ndjson                             one JSON object a line, its text in `text_field`
    Parquet       .parquet                                    the string column `text_field`, one row group at a time
    compressed    .gz, .zst around text or JSON Lines         decompressed as it is read (zlib / zstandard)

Every format reads as the .txt file it stands for: a JSON Lines or Parquet record is its text followed
by a blank line ("\\n\\n"). A record is therefore always a document of its own (the train/val split never
cuts through it), and the same corpus as .txt, .jsonl, .jsonl.gz, .jsonl.zst or .parquet gives the same
documents, the same tokenizer and the same shards (tests/test_corpus_formats.py).

Nothing is read whole: `read_chunks(path)` yields (text, raw bytes consumed) pieces of about READ_BLOCK
bytes. What can go wrong, and what happens (each a one-line TinyLLMError, or a CorpusWarning at the end
of the file):
  - binary data given as text (NUL bytes, or over BINARY_SHARE of the first SNIFF_BYTES not UTF-8): error;
  - invalid UTF-8 in text (a Latin-1 byte, a file cut mid-character): U+FFFD, one warning with the count;
  - a JSON Lines line that is not a JSON object, or lacks `text_field`, or a Parquet null: with
    bad_records="fail" (default) an error naming file, line and field; with "skip" one warning with counts;
  - a Parquet file without the column: error listing the columns it has;
  - a truncated .gz/.zst: what was read is kept, and a warning names the file and says so;
  - a file whose type cannot be told (an unknown suffix and not text): error.
"""

from __future__ import annotations

import codecs
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyLLMError
from ..imports import signals_deferred

READ_BLOCK = 8 << 20  # bytes of an uncompressed file read at a time
COMPRESSED_BLOCK = 1 << 20  # bytes of a compressed file read at a time (~3-10x that once decompressed)
SNIFF_BYTES = 64 << 10  # the head of a file that binary detection looks at
BINARY_SHARE = 0.25  # more U+FFFD than this share of the head's characters: not text
BAD_RECORDS = ("fail", "skip")

TEXT_SUFFIXES = (".txt",)  # what a folder's plain-text files end in
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIX = ".parquet"
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
UNSUPPORTED_COMPRESSION = (".bz2", ".xz", ".lz4", ".zip", ".7z", ".tar", ".tgz")
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"PAR1": "Parquet", b"PK\x03\x04": "zip"}


@dataclass(frozen=True)
class ReadOptions:
    """How records are read out of JSON Lines and Parquet files (plain text ignores both)."""

    text_field: str = "text"
    """The JSON field / Parquet column that holds a record's text."""
    bad_records: str = "fail"
    """A record that is not JSON, lacks text_field or holds no string there: 'fail' stops naming it, 'skip' skips
    it and warns once per file with the counts."""

    def __post_init__(self):
        if not isinstance(self.text_field, str) or not self.text_field:
            raise TinyLLMError(f"--text_field must be a non-empty field name, got {self.text_field!r}")
        if self.bad_records not in BAD_RECORDS:
            raise TinyLLMError(f"--bad_records must be 'fail' or 'skip', got {self.bad_records!r}")


DEFAULT = ReadOptions()


@dataclass(frozen=True)
class Kind:
    """What a file is: format 'text' | 'jsonl' | 'parquet', compression None | 'gzip' | 'zstd'."""

    format: str
    compression: str | None = None


def kind_of(path: Path) -> Kind:
    """The file's kind from its suffixes, e.g. corpus.jsonl.zst -> Kind('jsonl', 'zstd').

    >>> kind_of(Path("a.jsonl.gz")), kind_of(Path("a.parquet")), kind_of(Path("notes"))
    (Kind(format='jsonl', compression='gzip'), Kind(format='parquet', compression=None), Kind(format='text', compression=None))
    """
    name = path.name.lower()
    for suffix in UNSUPPORTED_COMPRESSION:
        if name.endswith(suffix):
            raise TinyLLMError(
                f"{path}: {suffix} files are not read; decompress it, or recompress it with gzip (.gz) or zstd (.zst)"
            )
    compression = next((c for s, c in COMPRESSIONS.items() if name.endswith(s)), None)
    if compression:
        name = name[: name.rindex(".")]
    if name.endswith(PARQUET_SUFFIX):
        if compression:
            raise TinyLLMError(f"{path}: a Parquet file compresses itself; give the .parquet file uncompressed")
        return Kind("parquet")
    if name.endswith(JSONL_SUFFIXES):
        return Kind("jsonl", compression)
    return Kind("text", compression)  # .txt, or a suffix that says nothing: sniffed as it is read


def is_corpus_file(path: Path) -> bool:
    """Whether a folder's file is read as corpus: .txt, .jsonl, .ndjson, .parquet, and .txt/.jsonl/.ndjson + .gz/.zst."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIX):
        return True
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    return name.endswith((*TEXT_SUFFIXES, *JSONL_SUFFIXES))


def folder_files(folder: Path) -> list[Path]:
    """Every corpus file under a folder (any mix of formats), sorted by path."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and is_corpus_file(f))


def read_chunks(path: Path, options: ReadOptions = DEFAULT, block: int = READ_BLOCK) -> Iterator[tuple[str, int]]:
    """The text `path` stands for, in pieces -> (text, raw file bytes consumed for it), reading `block`
    bytes at a time (at most COMPRESSED_BLOCK of a compressed file). Newlines are as in the file (the
    caller normalises); warnings (invalid UTF-8, skipped records, truncation) come when the file is done."""
    kind = kind_of(path)
    if kind.format == "parquet":
        yield from _parquet_chunks(path, options)
        return
    cut = _Truncation()
    blocks = _raw_blocks(path, kind, block, cut)
    if kind.format == "jsonl" and _orjson_loads is not None:
        yield from _jsonl_bytes_chunks(path, blocks, kind, options, cut)
    else:
        texts = _decode(path, blocks, kind, cut)
        yield from (_jsonl_chunks(path, texts, options, cut) if kind.format == "jsonl" else texts)
    _warn_truncated(path, kind, cut)


def _warn_truncated(path: Path, kind: Kind, cut: _Truncation) -> None:
    if cut.decompressed is not None:
        _warn(
            f"{path}: the {kind.compression} stream is truncated (it ends before its end marker); kept the "
            f"{cut.decompressed:,} bytes decompressed before the cut"
            + ("; its last line, cut short, was dropped" if cut.dropped_line else "")
        )


class _Truncation:
    """Set by _raw_blocks when a compressed stream ends early: how much was decompressed."""

    decompressed: int | None = None
    dropped_line = False


def read_utf8(
    path: Path, options: ReadOptions = DEFAULT, block: int = READ_BLOCK
) -> Iterator[tuple[bytes | memoryview, int]]:
    """The UTF-8 bytes a text file (any compression) or Parquet file stands for, not decoded -> (bytes or
    memoryview, file bytes consumed for them), `block` at a time (a Parquet file a row group at a time),
    for a reader that repairs and counts invalid UTF-8 itself (the C++ trainer's add_bytes, or
    corpus.stream_raw_text_blocks: no Python str is made). Binary data is refused and a leading BOM
    dropped, as read_chunks does; truncation and skipped-row warnings come when the file is done, UTF-8
    ones do not."""
    kind = kind_of(path)
    if kind.format == "parquet":
        yield from _parquet_values(path, options)
        return
    if kind.format != "text":
        raise ValueError(f"read_utf8 reads text and Parquet, not {kind.format}")
    cut = _Truncation()
    yield from _text_bytes(path, kind, block, cut)
    _warn_truncated(path, kind, cut)


def read_jsonl_utf8(path: Path, options: ReadOptions = DEFAULT, block: int = READ_BLOCK) -> Iterator[tuple[bytes, int]]:
    """A JSON Lines file's texts (each + "\n\n", in file order) as UTF-8 bytes, not as str -> (bytes, file
    bytes consumed for them): the lines the C++ decider takes (csrc/jsonl_text.h) go from the read bytes
    to the output without a str; the rest are read by the Python reader (_jsonl_bytes_chunks), whose texts
    are encoded "surrogatepass": so the output is valid UTF-8 except where a record held a lone surrogate
    ("\\ud800" in JSON), which decode("utf-8", "surrogatepass") gives back. Needs orjson (has_orjson);
    warnings and errors are read_chunks'."""
    from .._bpe import jsonl_texts

    out: list[bytes] = []

    def fast(lines: memoryview) -> tuple[int, int, int]:
        texts, took, n, records = jsonl_texts(lines, options.text_field)
        out.append(texts)
        return took, n, records

    for text, raw in feed_jsonl(path, fast, options, block):
        if text:  # a text the Python reader decided, after the C++ texts of the lines before it
            out.append(text.encode("utf-8", "surrogatepass"))
        if raw:
            yield b"".join(out), raw
            out.clear()
    if out:
        yield b"".join(out), 0


def _text_bytes(path: Path, kind: Kind, block: int, cut: _Truncation) -> Iterator[tuple[bytes, int]]:
    """_raw_blocks of a text file, sniffed (binary data refused), a leading BOM dropped."""
    first = True
    for data, raw in _sniffed(path, _raw_blocks(path, kind, block, cut), kind):
        if first and data:
            data = data.removeprefix(b"\xef\xbb\xbf") if isinstance(data, bytes) else data
            first = False
        yield data, raw


def decode_counted(data: bytes) -> tuple[str, int]:
    """data decoded as read_chunks decodes (invalid sequences as U+FFFD) -> (text, how many were replaced)."""
    before = _replaced[0]
    text = data.decode("utf-8", "tinyllm.formats.replace_and_count")
    return text, _replaced[0] - before


def precheck(path: Path, options: ReadOptions = DEFAULT) -> None:
    """What can be checked before reading (`tinyllm prepare` checks every file before it encodes any): the
    kind, a Parquet file's column, a compressed file's magic bytes, a text file's head (binary data)."""
    kind = kind_of(path)
    if kind.format == "parquet":
        _parquet_file(path, options.text_field)
        return
    with _open(path) as f:
        head = f.read(SNIFF_BYTES)
    if kind.compression:
        _check_magic(path, head, kind.compression)
    else:
        check_text_head(path, head, kind)


def read_text(path: Path, options: ReadOptions = DEFAULT) -> str:
    """The whole text of one file (any format), newlines as in the file."""
    return "".join(t for t, _ in read_chunks(path, options))


# ---------------------------------------------------------------------------------------------------
# bytes: raw or decompressed
# ---------------------------------------------------------------------------------------------------
def _open(path: Path):
    try:
        return open(path, "rb")  # closed by the caller's with
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None


def _read(f, path: Path, size: int) -> bytes:
    try:
        return f.read(size)
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None


def _decompressor(compression: str):
    if compression == "gzip":
        return zlib.decompressobj(wbits=31)  # gzip members only
    try:
        with signals_deferred():
            import zstandard
    except ImportError:  # pragma: no cover - in the 'data' extra
        raise TinyLLMError("reading .zst files needs the 'zstandard' package: pip install 'tinyllm[data]'") from None
    return zstandard.ZstdDecompressor().decompressobj()


def _raw_blocks(path: Path, kind: Kind, size: int, cut: _Truncation) -> Iterator[tuple[bytes, int]]:
    """-> (bytes, raw bytes consumed): the file's bytes, decompressed when kind says so, about `size`
    at a time (what a compressed block stands for comes in pieces: _Inflater). A compressed stream
    that ends inside a member/frame keeps what was decompressed and notes it in `cut`."""
    with _open(path) as f:
        if kind.compression is None:
            while block := _read(f, path, size):
                yield block, len(block)
            return
        d, fed, out_total, pending = _Inflater(kind.compression), 0, 0, b""
        while True:
            block = pending or _read(f, path, min(size, COMPRESSED_BLOCK))
            pending = b""
            if not block:
                break
            if fed == 0 and out_total == 0:
                _check_magic(path, block, kind.compression)
            pieces, held = [], 0
            try:
                for out in d.pieces(block, size):
                    pieces.append(out)
                    held += len(out)
                    if held >= size:  # (its raw bytes come with the block's last piece)
                        out_total += held
                        yield b"".join(pieces), 0
                        pieces, held = [], 0
            except Exception as e:  # zlib.error / zstandard.ZstdError: corrupt data
                raise TinyLLMError(
                    f"{path}: corrupt {kind.compression} data after {out_total + held:,} decompressed bytes ({e}); the file is damaged"
                ) from None
            fed += len(block)
            out_total += held
            if d.eof:  # a member/frame ended; another may follow (cat a.gz b.gz, zstd multi-frame)
                pending = d.unused
                d, fed = _Inflater(kind.compression), 0
                if pending:
                    _check_magic(path, pending, kind.compression, after=out_total)
            yield b"".join(pieces), len(block) - len(pending)
        if fed:  # input ended inside a member: the end-of-stream marker never came
            cut.decompressed = out_total


# compressed bytes one zstd call takes: an RLE block of 4 bytes stands for 128 KB, so 2 KB gives at most
# 64 MB (python-zstandard's decompressobj has no max_length; 2 KB slices decompress 20 MB as fast as 1 MB ones)
ZSTD_SLICE = 2 << 10


class _Inflater:
    """One gzip member's or zstd frame's decompressor, which hands out what a block of the file stands
    for in pieces, never all at once: 1 MB of compressed input can stand for 1 GB (gzip) or 32 GB
    (zstd), which one call would allocate whole. gzip: pieces of at most `size` (zlib's max_length);
    zstd: what each ZSTD_SLICE of the block gives. Where the member/frame ends, eof is set and unused
    holds the rest of the block."""

    def __init__(self, compression: str):
        self.compression, self.d = compression, _decompressor(compression)
        self.eof, self.unused = False, b""

    def pieces(self, block: bytes, size: int) -> Iterator[bytes]:
        d = self.d
        if self.compression == "gzip":
            data = block
            while True:
                out = d.decompress(data, size)
                yield out
                data = d.unconsumed_tail
                if d.eof:
                    self.eof, self.unused = True, d.unused_data
                    return
                if not data and len(out) < size:  # (a full piece may have more behind it)
                    return
        view = memoryview(block)
        for i in range(0, len(block), ZSTD_SLICE):
            yield d.decompress(view[i : i + ZSTD_SLICE])
            if d.eof:  # (d.unused_data is the rest of this slice only)
                self.eof, self.unused = True, d.unused_data + view[i + ZSTD_SLICE :].tobytes()
                return


def _check_magic(path: Path, head: bytes, compression: str, after: int | None = None) -> None:
    want = b"\x1f\x8b" if compression == "gzip" else b"\x28\xb5\x2f\xfd"
    if not head.startswith(want[: len(head)]):
        where = f" after {after:,} decompressed bytes" if after is not None else ""
        raise TinyLLMError(
            f"{path}: not {compression} data{where} (its bytes start {head[:4]!r}); "
            f"the suffix says {compression}-compressed"
        )


# ---------------------------------------------------------------------------------------------------
# text: UTF-8 with replacement, counted; binary refused
# ---------------------------------------------------------------------------------------------------
_replaced = [0]


def _replace_and_count(err: UnicodeDecodeError):
    _replaced[0] += 1
    return "\ufffd", err.end


codecs.register_error("tinyllm.formats.replace_and_count", _replace_and_count)


def sniff(head: bytes) -> str | None:
    """Why these first bytes of a file are not text, or None if they look like text.

    >>> sniff(b"hello"), sniff(b"\\x89PNG\\r\\n\\x1a\\n\\x00\\x00"), sniff(b"\\x1f\\x8b\\x08\\x00")
    (None, 'a NUL byte at offset 8', 'it starts like gzip data')
    """
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return f"it starts like {what} data"
    nul = head.find(b"\x00")
    if nul >= 0:
        return f"a NUL byte at offset {nul}"
    before = _replaced[0]
    text = head.decode("utf-8", "tinyllm.formats.replace_and_count")
    bad = _replaced[0] - before - (1 if len(head) >= SNIFF_BYTES else 0)  # the cut may split the last character
    if text and bad > BINARY_SHARE * len(text):
        return f"{bad / len(text):.0%} of its first {len(head):,} bytes are not UTF-8"
    return None


def check_text_head(path: Path, head: bytes, kind: Kind) -> None:
    """Refuse binary data (random bytes, an image, a .bin) given as a text corpus, in one line."""
    why = sniff(head[:SNIFF_BYTES])
    if why is None:
        return
    if kind.format == "text" and not path.name.lower().endswith(TEXT_SUFFIXES) and kind.compression is None:
        raise TinyLLMError(
            f"{path}: cannot tell what kind of file this is: not UTF-8 text ({why}); corpus files are "
            f"text (.txt), JSON Lines (.jsonl) or Parquet (.parquet), optionally .gz/.zst-compressed"
        )
    what = "JSON Lines" if kind.format == "jsonl" else "text"
    raise TinyLLMError(
        f"{path}: looks like binary data, not UTF-8 {what} ({why}); if it is text in another encoding, "
        f"convert it first (e.g. iconv -f latin1 -t utf-8)"
    )


def _sniffed(path: Path, blocks: Iterator[tuple[bytes, int]], kind: Kind) -> Iterator[tuple[bytes, int]]:
    """blocks, the first held back until SNIFF_BYTES have come, so that binary data is refused first."""
    head, head_raw = b"", 0
    for data, raw in blocks:
        if head_raw >= 0:  # still holding the head
            head += data
            head_raw += raw
            if len(head) < SNIFF_BYTES:
                continue
            check_text_head(path, head, kind)
            data, raw, head_raw = head, head_raw, -1
        if data or raw:
            yield data, raw
    if head_raw >= 0:
        if head:
            check_text_head(path, head, kind)
        yield head, head_raw


def _decode(path: Path, blocks: Iterator[tuple[bytes, int]], kind: Kind, cut: _Truncation) -> Iterator[tuple[str, int]]:
    """UTF-8 (BOM dropped) -> (str, raw bytes); each invalid sequence is U+FFFD, as bytes.decode's
    'replace', and one warning at the end counts them. A truncated stream's last, incomplete
    character is dropped: the cut is the truncation's, not invalid UTF-8."""
    from ..tokenizer.inputs import warn_invalid_utf8

    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="tinyllm.formats.replace_and_count")
    replaced = 0
    for data, raw in _sniffed(path, blocks, kind):
        before = _replaced[0]
        text = decoder.decode(data, False)
        replaced += _replaced[0] - before
        yield text, raw
    if cut.decompressed is None:
        before = _replaced[0]
        tail = decoder.decode(b"", True)
        replaced += _replaced[0] - before
        if tail:
            yield tail, 0
    if replaced:
        warn_invalid_utf8(path, replaced)


# ---------------------------------------------------------------------------------------------------
# records: JSON Lines and Parquet
# ---------------------------------------------------------------------------------------------------
class BadRecords:
    """Counts (or refuses) records without text: one error naming file, place and field, or one warning."""

    def __init__(self, path: Path, options: ReadOptions, unit: str):
        self.path, self.options, self.unit = path, options, unit
        self.seen = 0
        self.skipped: dict[str, list[int]] = {}  # reason -> [count, first place]

    def bad(self, place: int, why: str, reason: str) -> None:
        if self.options.bad_records == "fail":
            raise TinyLLMError(
                f"{self.path}: {self.unit} {place}: {why} (--bad_records skip skips such records with a warning)"
            )
        entry = self.skipped.setdefault(reason, [0, place])
        entry[0] += 1

    def report(self) -> None:
        if not self.skipped:
            return
        n = sum(c for c, _ in self.skipped.values())
        parts = ", ".join(
            f"{c:,} {reason} (first at {self.unit} {first})" for reason, (c, first) in self.skipped.items()
        )
        _warn(f"{self.path}: skipped {n:,} of {self.seen:,} records: {parts}")


def _record_text(obj, field: str, place: int, bad: BadRecords) -> str | None:
    if not isinstance(obj, dict):
        bad.bad(place, f"expected a JSON object, got {_json_kind(obj)}", "not a JSON object")
        return None
    if field not in obj:
        bad.bad(place, f"no field '{field}' (it has: {', '.join(list(obj)[:8]) or 'no fields'})", f"without '{field}'")
        return None
    text = obj[field]
    if not isinstance(text, str):
        bad.bad(place, f"field '{field}' is {_json_kind(text)}, not a string", f"with a non-string '{field}'")
        return None
    return text


def _json_kind(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number"
    )


try:
    from orjson import loads as _orjson_loads
except ImportError:  # the 'data' extra installs it; json alone reads the same, slower
    _orjson_loads = None


def has_orjson() -> bool:
    return _orjson_loads is not None


def loads_record(line: str):
    """json.loads(line), through orjson where it can (2.7x faster on corpus lines here). orjson refuses
    some of what json reads (NaN, 1e400, lone surrogate escapes, nesting past 1,024) and reads nothing
    json refuses, so on a refusal json.loads decides. What a record's text is, or why it has none, is
    json's (tests/test_corpus_formats.py); only an integer past 64 bits comes back a float. Nesting too
    deep for json is a ValueError too, not a RecursionError."""
    if _orjson_loads is not None:
        try:
            return _orjson_loads(line)
        except ValueError:
            pass
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _jsonl_chunks(
    path: Path, texts: Iterator[tuple[str, int]], options: ReadOptions, cut: _Truncation
) -> Iterator[tuple[str, int]]:
    """Decoded JSON Lines -> (each record's text + "\\n\\n", raw bytes), a block of records at a time.
    The last line of a truncated file is dropped (the truncation warning says so), not a bad record."""
    bad = BadRecords(path, options, "line")
    field, lineno, carry = options.text_field, 0, ""
    for text, raw in texts:
        text = carry + text
        # split on "\n" only: json.dumps(ensure_ascii=False) writes U+2028 and friends raw inside strings
        lines = text.split("\n")
        carry = lines.pop()
        out = []
        for line in lines:
            lineno += 1
            t = _line_text(line, lineno, field, bad)
            if t is not None:
                out.append(t)
                out.append("\n\n")
        yield "".join(out), raw
    if carry.strip() and cut.decompressed is not None:
        cut.dropped_line = True
    elif carry.strip():  # a last line without "\n"
        t = _line_text(carry, lineno + 1, field, bad)
        if t is not None:
            yield t + "\n\n", 0
    bad.report()


def _line_text(line: str, lineno: int, field: str, bad: BadRecords) -> str | None:
    """One decoded JSON Lines line's text; None for a blank line or a bad record (counted, or raised)."""
    if not line or line.isspace():
        return None
    bad.seen += 1
    try:
        obj = loads_record(line)
    except ValueError as e:
        bad.bad(lineno, f"not JSON ({getattr(e, 'msg', e)})", "not JSON")
        return None
    return _record_text(obj, field, lineno, bad)


def _jsonl_bytes_chunks(
    path: Path,
    blocks: Iterator[tuple[bytes, int]],
    kind: Kind,
    options: ReadOptions,
    cut: _Truncation,
    fast: Callable[[memoryview], tuple[int, int, int]] | None = None,
) -> Iterator[tuple[str, int]]:
    """_jsonl_chunks(_decode(...)) on the undecoded bytes: a line that orjson reads (valid UTF-8 and
    JSON) is never decoded, split or copied as a str; any other line takes _jsonl_chunks' steps (decoded,
    invalid UTF-8 as U+FFFD and counted; a blank line skipped; json.loads decides). So the texts, and
    every warning and error, are _jsonl_chunks' (tests/test_corpus_formats.py compares the two), in
    about a third of its CPU time on 10 MB of records. A newline byte is never inside a UTF-8 sequence,
    so decoding line by line replaces exactly what decoding the stream replaces.

    fast (the C++ trainer's add_jsonl): given whole lines, it takes the texts of those it can decide
    itself (csrc/jsonl_text.h) up to the first it cannot -> (bytes, lines, records) it took; such
    texts never come back here, and only the texts of the lines decided here are yielded (each as
    soon as it is read, so that the caller keeps them in file order)."""
    from ..tokenizer.inputs import warn_invalid_utf8

    bad = BadRecords(path, options, "line")
    field, lineno, carry, replaced, start = options.text_field, 0, b"", 0, True

    def decoded(data: bytes, final: bool = True) -> str:
        nonlocal replaced
        before = _replaced[0]
        if final:
            text = data.decode("utf-8", "tinyllm.formats.replace_and_count")
        else:  # a truncated stream's last line: its last, incomplete character is the cut's, not invalid
            text = codecs.getincrementaldecoder("utf-8")("tinyllm.formats.replace_and_count").decode(data, False)
        replaced += _replaced[0] - before
        return text

    def line_text(line: bytes) -> str | None:
        try:
            obj = _orjson_loads(line)
        except ValueError:
            return _line_text(decoded(line), lineno, field, bad)
        bad.seen += 1
        return _record_text(obj, field, lineno, bad)

    for data, raw in _sniffed(path, blocks, kind):
        if start and data:
            data, start = data.removeprefix(b"\xef\xbb\xbf"), False  # (utf-8-sig: a BOM at the start only)
        if fast is None:
            lines = data.split(b"\n")
            lines[0] = carry + lines[0]
            carry = lines.pop()
            out = []
            for line in lines:
                lineno += 1
                t = line_text(line)
                if t is not None:
                    out.append(t)
                    out.append("\n\n")
            yield "".join(out), raw
            continue
        first = data.find(b"\n")
        if first < 0:
            carry += data
            continue
        lineno += 1  # the line the last block began: here
        t = line_text(carry + data[:first])
        if t is not None:
            yield t + "\n\n", 0
        end = data.rfind(b"\n") + 1
        view, pos, carry = memoryview(data), first + 1, data[end:]
        while pos < end:
            took, lines, records = fast(view[pos:end])
            pos, lineno, bad.seen = pos + took, lineno + lines, bad.seen + records
            if pos < end:  # a line for Python to decide
                nl = data.index(b"\n", pos)
                lineno += 1
                t = line_text(data[pos:nl])
                if t is not None:
                    yield t + "\n\n", 0
                pos = nl + 1
        yield "", raw
    last = decoded(carry, final=cut.decompressed is None)
    if replaced:
        warn_invalid_utf8(path, replaced)
    if last.strip() and cut.decompressed is not None:
        cut.dropped_line = True
    elif last.strip():  # a last line without "\n"
        t = _line_text(last, lineno + 1, field, bad)
        if t is not None:
            yield t + "\n\n", 0
    bad.report()


def feed_jsonl(
    path: Path,
    fast: Callable[[memoryview], tuple[int, int, int]],
    options: ReadOptions = DEFAULT,
    block: int = READ_BLOCK,
) -> Iterator[tuple[str, int]]:
    """A JSON Lines file (.jsonl, .jsonl.gz, .jsonl.zst) through `fast` (see _jsonl_bytes_chunks):
    -> (the text of a record it left, or "" where a read block ends; file bytes consumed), the texts in
    file order between its own; warnings as read_chunks'."""
    kind = kind_of(path)
    if kind.format != "jsonl" or _orjson_loads is None:
        raise ValueError(f"feed_jsonl needs a JSON Lines file and orjson: {path}")
    cut = _Truncation()
    yield from _jsonl_bytes_chunks(path, _raw_blocks(path, kind, block, cut), kind, options, cut, fast)
    _warn_truncated(path, kind, cut)


def first_record_is_qa(path: Path) -> bool:
    """Whether a .jsonl file is Q&A data (its first record has a 'question') rather than a text corpus.
    A file that cannot be read counts as Q&A, so the Q&A reader reports what is wrong with it."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return True
    line = next((ln for ln in head.decode("utf-8-sig", "replace").split("\n") if ln.strip()), "")
    try:
        obj = json.loads(line)
    except ValueError:
        return '"question"' in line
    return isinstance(obj, dict) and "question" in obj


def _parquet_file(path: Path, field: str, **read_options):
    try:
        with signals_deferred():
            import pyarrow as pa
            import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - in the 'data' extra
        raise TinyLLMError("reading .parquet files needs the 'pyarrow' package: pip install 'tinyllm[data]'") from None
    try:
        pf = pq.ParquetFile(path, **read_options)
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None
    except (pa.ArrowException, ValueError) as e:
        raise TinyLLMError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    names = pf.schema_arrow.names
    if field not in names:
        raise TinyLLMError(
            f"{path}: no column '{field}' (columns: {', '.join(names[:12]) or 'none'}); pick one with --text_field"
        )
    t = pf.schema_arrow.field(field).type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise TinyLLMError(f"{path}: column '{field}' holds {t}, not text; pick a string column with --text_field")
    return pf


PARQUET_BATCH = 2 << 20  # bytes of text a Parquet read gives at a time, about (rows are whole)


def _parquet_values(path: Path, options: ReadOptions) -> Iterator[tuple[memoryview, int]]:
    """A Parquet file's text column in batches of rows of about PARQUET_BATCH bytes, never the whole
    file nor a whole row group (row groups of 100s of MB are common, and pyarrow held 3-4x a group
    reading one whole) -> (the batch's values, each + "\\n\\n", as one UTF-8 buffer, file bytes it
    stands for: shares by rows, summing to the file's size). Nulls are bad records."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # pages read as decoded, not a column chunk's pages all at once (pre_buffer); one thread: the
    # trainer's threads have the other cores (and use_threads=True held more, measured no faster)
    pf = _parquet_file(path, options.text_field, pre_buffer=False, buffer_size=1 << 20)
    bad = BadRecords(path, options, "row")
    size, rows, row = path.stat().st_size, max(1, pf.metadata.num_rows), 0
    text_bytes = sum(_column_bytes(pf.metadata.row_group(g), options.text_field) for g in range(pf.num_row_groups))
    batch_rows = max(1, int(rows * PARQUET_BATCH / max(1, text_bytes)))
    batches = pf.iter_batches(batch_size=batch_rows, columns=[options.text_field], use_threads=False)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as e:
            raise TinyLLMError(f"{path}: cannot be read after row {row:,} ({str(e).splitlines()[0]})") from None
        if batch is None:
            break
        col = batch.column(0)
        bad.seen += len(col)
        start, row = row, row + len(col)
        if col.null_count:  # rows without text: refused or counted, like JSON Lines records
            first = start + pc.index(pc.is_null(col), True).as_py()
            bad.bad(first, f"'{options.text_field}' is null", f"with a null '{options.text_field}'")
            bad.skipped[f"with a null '{options.text_field}'"][0] += col.null_count - 1
            col = pc.drop_null(col)
        # each value + "\n\n": the values of a string array lie back to back in one buffer, so the
        # batch's text is a slice of it (int64 offsets of large_string)
        joined = pc.binary_join_element_wise(col, "", "\n\n").cast(pa.large_string())
        data = memoryview(b"")
        if len(joined):
            _, offsets, values = joined.buffers()
            offsets = memoryview(offsets).cast("q")
            data = memoryview(values)[offsets[joined.offset] : offsets[joined.offset + len(joined)]]
        yield data, size * row // rows - size * start // rows
    bad.report()


def _column_bytes(group, field: str) -> int:
    """A row group's uncompressed bytes of column `field` (the whole group's if it is not a leaf)."""
    for i in range(group.num_columns):
        if group.column(i).path_in_schema == field:
            return group.column(i).total_uncompressed_size
    return group.total_byte_size


def _parquet_chunks(path: Path, options: ReadOptions) -> Iterator[tuple[str, int]]:
    """_parquet_values decoded (Arrow strings should be UTF-8; invalid bytes are counted and warned about)."""
    from ..tokenizer.inputs import warn_invalid_utf8

    replaced = 0
    for data, raw in _parquet_values(path, options):
        before = _replaced[0]
        text = bytes(data).decode("utf-8", "tinyllm.formats.replace_and_count")
        replaced += _replaced[0] - before
        yield text, raw
    if replaced:
        warn_invalid_utf8(path, replaced)


def _warn(message: str) -> None:
    import warnings

    from ..tokenizer.inputs import CorpusWarning

    warnings.warn(message, CorpusWarning, stacklevel=4)
