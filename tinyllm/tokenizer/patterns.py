"""Pre-tokenization split patterns and the special tokens.

Byte-level BPE never merges across a pre-token boundary, so the split pattern decides
what a token can be: "gpt4" keeps digits in groups of at most three and glues one
leading space or punctuation mark onto a word; "gpt2" is the older, simpler rule.
Both strings are exactly tiktoken's (cl100k_base and r50k_base), so an Encoding built
from our ranks splits text the way we do. The C++ core implements the same two
patterns by hand (csrc/pretokenize.h); it is tested against the `regex` module.
"""

from __future__ import annotations

from ..errors import TinyLLMError

GPT4_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

PATTERNS: dict[str, str] = {"gpt4": GPT4_PATTERN, "gpt2": GPT2_PATTERN}

# Ids 0..3 are the special tokens, then the 256 bytes (byte b is id b + BYTE_OFFSET),
# then one id per learned merge in the order they were learned.
SPECIAL_TOKENS: dict[str, int] = {"<PAD>": 0, "<UNK>": 1, "<BOS>": 2, "<EOS>": 3}
BYTE_OFFSET = len(SPECIAL_TOKENS)
MIN_VOCAB_SIZE = BYTE_OFFSET + 256


def check_pattern(pattern: str, where: str = "pattern") -> str:
    """Return the pattern's name, or raise naming the accepted ones."""
    if not isinstance(pattern, str) or pattern not in PATTERNS:
        for name, regex in PATTERNS.items():  # the full regex string is accepted too
            if pattern == regex:
                return name
        raise TinyLLMError(f"{where}: unknown split pattern {pattern!r}; expected one of {sorted(PATTERNS)}")
    return pattern
