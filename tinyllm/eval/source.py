"""What `tinyllm eval` evaluates: a text, a folder of .txt files, the Bible, or one split of a corpus,
as the token stream the checkpoint's tokenizer makes of it.

    --split all         every file's text as read (BOM dropped, newlines normalised), file after file
    --split train|val   the documents of that split, exactly as `tinyllm train` splits and encodes them
                        (data/corpus.py split_documents, one encode per document), so an evaluation of
                        the val split sees the trainer's val tokens
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.corpus import BIBLE, load_documents, read_text, split_documents, text_files
from ..data.qa import is_qa_file
from ..errors import TinyLLMError

SPLITS = ("all", "train", "val")


@dataclass
class EvalText:
    """A token stream to evaluate, and where it came from."""

    ids: np.ndarray
    """(N,) int64 token ids, documents back to back."""
    documents: int
    """Documents (or files) encoded."""
    text_bytes: int
    """UTF-8 bytes of the text those ids encode."""
    name: str
    """The source and split, for messages and reports."""


def eval_documents(data: str, split: str) -> list[str]:
    """The texts to encode, in order; TinyLLMError naming the source when it cannot be read."""
    if split not in SPLITS:
        raise TinyLLMError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if data != BIBLE and is_qa_file(data):
        raise TinyLLMError(f"{data}: a Q&A file; tinyllm eval reads text (a file, a folder of .txt files, or bible)")
    if split == "all":
        return load_documents(BIBLE) if data == BIBLE else [read_text(f) for f in text_files(data)]
    train, val = split_documents(load_documents(data))
    return train if split == "train" else val


def load_eval_text(tokenizer, data: str, split: str = "all", max_tokens: int | None = None) -> EvalText:
    """Encode the source's split with `tokenizer` (one encode per document, as training does); with
    max_tokens, keep the first max_tokens + 1 ids (max_tokens scored targets)."""
    if max_tokens is not None and max_tokens <= 0:
        raise TinyLLMError(f"--max_tokens must be positive, got {max_tokens}")
    docs = [d for d in eval_documents(data, split) if d]
    if not docs:
        raise TinyLLMError(f"{data}: the {split} split holds no text")
    parts = tokenizer.encode_batch(docs)
    ids = np.fromiter((i for p in parts for i in p), dtype=np.int64)
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    name = data if split == "all" else f"{data} ({split} split)"
    return EvalText(ids, len(docs), sum(len(d.encode("utf-8", "surrogatepass")) for d in docs), name)
