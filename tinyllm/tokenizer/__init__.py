"""Byte-level BPE tokenizer: a C++ core (tinyllm._bpe) with a pure-Python twin.

    from tinyllm.tokenizer import Tokenizer
    tok = Tokenizer.train(["some text", Path("corpus_dir")], vocab_size=32000)  # a str is text, a Path a file
    ids = tok.encode("hello <EOS>"); tok.decode(ids); tok.save("tok.txt")

`Tokenizer` is the native-backed class when the extension is built and
TINYLLM_PURE_PYTHON != "1"; otherwise the reference (tinyllm.tokenizer.reference),
which defines the algorithm. Both give identical merges and ids. With
TINYLLM_REQUIRE_NATIVE=1 a missing or broken extension is an ImportError instead of
a silent fallback (CI sets it).
"""

from __future__ import annotations

import os

from .inputs import OpenBlock, Paragraphs, Texts
from .patterns import GPT2_PATTERN, GPT4_PATTERN, PATTERNS, SPECIAL_TOKENS
from .reference import Tokenizer as ReferenceTokenizer

_native_error: Exception | None = None
try:
    from .. import _bpe  # noqa: F401
except ImportError as e:  # not built (no compiler at install time) or broken
    _native_error = e
    if os.environ.get("TINYLLM_REQUIRE_NATIVE") == "1":
        raise ImportError(
            f"TINYLLM_REQUIRE_NATIVE=1 but the C++ tokenizer core tinyllm._bpe cannot be imported: {e}"
        ) from e


def native_available() -> bool:
    """True when the C++ core (tinyllm._bpe) imported."""
    return _native_error is None


if native_available() and os.environ.get("TINYLLM_PURE_PYTHON") != "1":
    from .native import NativeTokenizer as Tokenizer
else:
    Tokenizer = ReferenceTokenizer

__all__ = [
    "Tokenizer",
    "ReferenceTokenizer",
    "Texts",
    "Paragraphs",
    "OpenBlock",
    "SPECIAL_TOKENS",
    "PATTERNS",
    "GPT4_PATTERN",
    "GPT2_PATTERN",
    "native_available",
]
