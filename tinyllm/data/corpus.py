"""Text sources: the King James Bible shipped by `pybible` (the offline default),
a text file, or a folder of .txt files."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import TinyLLMError

BIBLE = "bible"
_VERSE_REF = re.compile(r"^\d+:\d+:\d+ ")  # pybible's "BB:CCC:VVV " prefix


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
    """"\r\n" and lone "\r" -> "\n", so CRLF (and old-Mac) files split like LF files."""
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
        docs.extend(par + "\n\n" for par in re.split(r"\n\s*\n", text) if par.strip())
    if not docs:
        raise TinyLLMError(f"{source}: corpus is empty (no non-blank text)")
    return docs
