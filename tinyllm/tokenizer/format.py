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

from ..errors import TinyLLMError
from .patterns import BYTE_OFFSET, PATTERNS, SPECIAL_TOKENS

MAGIC = "tinyllm-bpe"
VERSION = 1
FIRST_MERGE_ID = BYTE_OFFSET + 256


def tokenizer_text(pattern: str, specials: dict[str, int], merges: list[tuple[int, int]],
                   vocab: list[bytes]) -> str:
    """Serialize; vocab[i] is token i's bytes (used only for the readable column)."""
    lines = [f"{MAGIC} v{VERSION}", f"pattern {pattern}"]
    lines += [f"special {name} {i}" for name, i in specials.items()]
    lines.append(f"merges {len(merges)}")
    lines += [f"{a} {b}\t{vocab[FIRST_MERGE_ID + k]!r}" for k, (a, b) in enumerate(merges)]
    lines.append("end")
    return "\n".join(lines) + "\n"


def parse_tokenizer_text(text: str, source: str) -> tuple[str, list[tuple[int, int]]]:
    """Parse the format above; every problem is one TinyLLMError naming `source`."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise TinyLLMError(f"{source} is empty, not a tinyllm tokenizer file")
    head = lines[0].split(" ")
    if head[0] != MAGIC:
        first = lines[0][:40] + ("..." if len(lines[0]) > 40 else "")
        raise TinyLLMError(f"{source} is not a tinyllm tokenizer file (first line {first!r}, "
                           f"expected '{MAGIC} v{VERSION}')")
    if len(head) != 2 or head[1] != f"v{VERSION}":
        found = head[1] if len(head) > 1 else "(none)"
        raise TinyLLMError(f"{source}: tokenizer format version {found} is not supported "
                           f"(this tinyllm reads v{VERSION})")

    pos = 1

    def next_line(what: str) -> str:
        nonlocal pos
        if pos >= len(lines):
            raise TinyLLMError(f"{source} is truncated: it ends before the {what} line")
        pos += 1
        return lines[pos - 1]

    parts = next_line("pattern").split(" ")
    if len(parts) != 2 or parts[0] != "pattern":
        raise TinyLLMError(f"{source}: line {pos}: expected 'pattern <name>', got {lines[pos - 1][:40]!r}")
    pattern = parts[1]
    if pattern not in PATTERNS:
        raise TinyLLMError(f"{source}: line {pos}: unknown split pattern {pattern!r}; expected one of {sorted(PATTERNS)}")

    specials = {}
    for _ in SPECIAL_TOKENS:
        parts = next_line("special token").split(" ")
        if len(parts) != 3 or parts[0] != "special" or not parts[2].isdigit():
            raise TinyLLMError(f"{source}: line {pos}: expected 'special <name> <id>', got {lines[pos - 1][:40]!r}")
        specials[parts[1]] = int(parts[2])
    if specials != SPECIAL_TOKENS:
        raise TinyLLMError(f"{source}: special tokens {specials} differ from the ones this tinyllm uses "
                           f"{SPECIAL_TOKENS}")

    parts = next_line("merges count").split(" ")
    if len(parts) != 2 or parts[0] != "merges" or not parts[1].isdigit():
        raise TinyLLMError(f"{source}: line {pos}: expected 'merges <count>', got {lines[pos - 1][:40]!r}")
    n_merges = int(parts[1])

    merges: list[tuple[int, int]] = []
    vocab: list[bytes] = [b""] * BYTE_OFFSET + [bytes([i]) for i in range(256)]
    for k in range(n_merges):
        if pos >= len(lines) or lines[pos] == "end":
            raise TinyLLMError(f"{source} is truncated: its header says {n_merges} merges, found {k}")
        line = lines[pos]
        pos += 1
        ids, _, shown = line.partition("\t")
        ab = ids.split(" ")
        if len(ab) != 2 or not ab[0].isdigit() or not ab[1].isdigit():
            raise TinyLLMError(f"{source}: line {pos}: expected '<left id> <right id>', got {line[:40]!r}")
        a, b = int(ab[0]), int(ab[1])
        new_id = FIRST_MERGE_ID + k
        if not (BYTE_OFFSET <= a < new_id and BYTE_OFFSET <= b < new_id):
            raise TinyLLMError(f"{source}: line {pos}: merge ({a}, {b}) refers to a token id that is special "
                               f"or not defined before id {new_id}")
        vocab.append(vocab[a] + vocab[b])
        if shown and shown != repr(vocab[-1]):  # repr of bytes is canonical: compare as text
            raise TinyLLMError(f"{source}: line {pos}: token text {shown[:40]} does not match merge "
                               f"({a}, {b}) = {vocab[-1]!r}; the file is corrupted")
        merges.append((a, b))
    if pos >= len(lines):
        raise TinyLLMError(f"{source} is truncated: the final 'end' line is missing")
    if lines[pos] != "end":
        raise TinyLLMError(f"{source}: line {pos + 1}: expected 'end' after {n_merges} merges, "
                           f"got {lines[pos][:40]!r}")
    if any(line.strip() for line in lines[pos + 1:]):
        raise TinyLLMError(f"{source}: line {pos + 2}: unexpected text after the 'end' line")
    return pattern, merges
