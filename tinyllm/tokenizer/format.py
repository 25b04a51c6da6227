"""The tokenizer save format: versioned, line-oriented, diffable text.

    tinyllm-bpe v1
    pattern gpt4
    special <PAD> 0
    special <UNK> 1
    special <BOS> 2
    special <EOS> 3
    merges 2
    104 105\tb'hi'
    32 264\tb' hi'
    end

One merge per line: the left and right token ids (merge i gets id 260 + i), then a tab
and the new token's bytes as a Python bytes literal - ignored by the parser except to
catch a corrupted line, there so a diff of two vocabularies is readable. The `merges N`
count and the `end` line make a truncated file an error rather than a smaller vocab.
"""

from __future__ import annotations

import functools
import os

from ..errors import TinyLLMError
from .patterns import BYTE_OFFSET, PATTERNS, SPECIAL_TOKENS

MAGIC = "tinyllm-bpe"
VERSION = 1
FIRST_MERGE_ID = BYTE_OFFSET + 256


def tokenizer_text(pattern: str, specials: dict[str, int], merges: list[tuple[int, int]], vocab: list[bytes]) -> str:
    """Serialize; vocab[i] is token i's bytes (used only for the readable column)."""
    lines = [f"{MAGIC} v{VERSION}", f"pattern {pattern}"]
    lines += [f"special {name} {i}" for name, i in specials.items()]
    lines.append(f"merges {len(merges)}")
    lines += [f"{a} {b}\t{vocab[FIRST_MERGE_ID + k]!r}" for k, (a, b) in enumerate(merges)]
    lines.append("end")
    return "\n".join(lines) + "\n"


def parse_tokenizer_text(text: str, source: str) -> tuple[str, list[tuple[int, int]]]:
    """Parse the format above; every problem is one TinyLLMError naming `source`.

    Returns (pattern name, merges). Each section has its reader below, in file order.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise TinyLLMError(f"{source} is empty, not a tinyllm tokenizer file")
    _check_version_line(lines[0], source)
    r = _LineReader(lines, source)
    pattern = _read_pattern(r)
    _read_specials(r)
    n_merges = _read_merges_count(r)
    merges = _read_merges(r, n_merges)
    _read_end(r, n_merges)
    return pattern, merges


class _LineReader:
    """The file's lines and a cursor: `pos` lines have been read, so the last one read is
    line number `pos` (1-based) - the number every error message gives."""

    def __init__(self, lines: list[str], source: str):
        self.lines, self.source, self.pos = lines, source, 1  # the version line is read

    def next(self, what: str) -> str:
        """The next line; a missing one means the file is truncated before `what`."""
        if self.pos >= len(self.lines):
            raise TinyLLMError(f"{self.source} is truncated: it ends before the {what} line")
        self.pos += 1
        return self.lines[self.pos - 1]

    def at(self) -> str:
        """The error prefix for the line last read: '<source>: line <n>'."""
        return f"{self.source}: line {self.pos}"


def _check_version_line(first: str, source: str) -> None:
    """Line 1 is 'tinyllm-bpe v1': another magic is another file type, another version an
    error saying which version was found."""
    head = first.split(" ")
    if head[0] != MAGIC:
        shown = first[:40] + ("..." if len(first) > 40 else "")
        raise TinyLLMError(
            f"{source} is not a tinyllm tokenizer file (first line {shown!r}, expected '{MAGIC} v{VERSION}')"
        )
    if len(head) != 2 or head[1] != f"v{VERSION}":
        found = head[1] if len(head) > 1 else "(none)"
        raise TinyLLMError(
            f"{source}: tokenizer format version {found} is not supported (this tinyllm reads v{VERSION})"
        )


def _read_pattern(r: _LineReader) -> str:
    """'pattern <name>', the name one of patterns.PATTERNS."""
    line = r.next("pattern")
    parts = line.split(" ")
    if len(parts) != 2 or parts[0] != "pattern":
        raise TinyLLMError(f"{r.at()}: expected 'pattern <name>', got {line[:40]!r}")
    pattern = parts[1]
    if pattern not in PATTERNS:
        raise TinyLLMError(f"{r.at()}: unknown split pattern {pattern!r}; expected one of {sorted(PATTERNS)}")
    return pattern


def _read_specials(r: _LineReader) -> None:
    """One 'special <name> <id>' line per special token; they must be exactly SPECIAL_TOKENS."""
    specials = {}
    for _ in SPECIAL_TOKENS:
        line = r.next("special token")
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "special" or not parts[2].isdigit():
            raise TinyLLMError(f"{r.at()}: expected 'special <name> <id>', got {line[:40]!r}")
        specials[parts[1]] = int(parts[2])
    if specials != SPECIAL_TOKENS:
        raise TinyLLMError(
            f"{r.source}: special tokens {specials} differ from the ones this tinyllm uses {SPECIAL_TOKENS}"
        )


def _read_merges_count(r: _LineReader) -> int:
    """'merges <count>': how many merge lines must follow before 'end'."""
    line = r.next("merges count")
    parts = line.split(" ")
    if len(parts) != 2 or parts[0] != "merges" or not parts[1].isdigit():
        raise TinyLLMError(f"{r.at()}: expected 'merges <count>', got {line[:40]!r}")
    return int(parts[1])


def _read_merges(r: _LineReader, n_merges: int) -> list[tuple[int, int]]:
    """n_merges lines '<left id> <right id>[\t<bytes literal>]'. Merge k makes id 260 + k
    from two earlier non-special ids; the bytes column, if present, must be that token's."""
    native = _native_merges()
    if native is not None and len(lines := r.lines[r.pos : r.pos + n_merges]) == n_merges:
        merges = native(lines, BYTE_OFFSET)  # csrc/merges_text.h: the same checks (a 32k file: 7 ms, not 32)
        if merges is not None:
            r.pos += n_merges
            return merges
    return _read_merges_checked(r, n_merges)  # and the first line that fails them is the error


@functools.cache
def _native_merges():
    """tinyllm._bpe.merges_if_well_formed, or None without the C++ core (or with TINYLLM_PURE_PYTHON=1)."""
    if os.environ.get("TINYLLM_PURE_PYTHON") == "1":
        return None
    try:
        from .. import _bpe
    except ImportError:
        return None
    return _bpe.merges_if_well_formed


def _read_merges_checked(r: _LineReader, n_merges: int) -> list[tuple[int, int]]:
    """_read_merges a line at a time, in Python: the reference, and the error's words."""
    merges: list[tuple[int, int]] = []
    vocab: list[bytes] = [b""] * BYTE_OFFSET + [bytes([i]) for i in range(256)]
    lines = r.lines
    for k in range(n_merges):
        if r.pos >= len(lines) or lines[r.pos] == "end":
            raise TinyLLMError(f"{r.source} is truncated: its header says {n_merges} merges, found {k}")
        line = lines[r.pos]
        r.pos += 1
        ids, _, shown = line.partition("\t")
        ab = ids.split(" ")
        if len(ab) != 2 or not ab[0].isdigit() or not ab[1].isdigit():
            raise TinyLLMError(f"{r.at()}: expected '<left id> <right id>', got {line[:40]!r}")
        a, b = int(ab[0]), int(ab[1])
        new_id = FIRST_MERGE_ID + k
        if not (BYTE_OFFSET <= a < new_id and BYTE_OFFSET <= b < new_id):
            raise TinyLLMError(
                f"{r.at()}: merge ({a}, {b}) refers to a token id that is special or not defined before id {new_id}"
            )
        vocab.append(vocab[a] + vocab[b])
        if shown and shown != repr(vocab[-1]):  # repr of bytes is canonical: compare as text
            raise TinyLLMError(
                f"{r.at()}: token text {shown[:40]} does not match merge "
                f"({a}, {b}) = {vocab[-1]!r}; the file is corrupted"
            )
        merges.append((a, b))
    return merges


def _read_end(r: _LineReader, n_merges: int) -> None:
    """The 'end' line right after the merges, then nothing but blank lines."""
    lines, pos, source = r.lines, r.pos, r.source
    if pos >= len(lines):
        raise TinyLLMError(f"{source} is truncated: the final 'end' line is missing")
    if lines[pos] != "end":
        raise TinyLLMError(f"{source}: line {pos + 1}: expected 'end' after {n_merges} merges, got {lines[pos][:40]!r}")
    if any(line.strip() for line in lines[pos + 1 :]):
        raise TinyLLMError(f"{source}: line {pos + 2}: unexpected text after the 'end' line")
