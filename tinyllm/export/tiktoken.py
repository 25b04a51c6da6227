"""A tokenizer as tiktoken files: `<out>.tiktoken` (tiktoken's ranks format: base64 token bytes and
rank per line, read by `tiktoken.load.load_tiktoken_bpe`) and `<out>.tiktoken.json` beside it with
what an Encoding needs besides the ranks (name, pat_str, special_tokens, explicit_n_vocab):

    meta = json.load(open("tok.tiktoken.json"))
    enc = tiktoken.Encoding(mergeable_ranks=load_tiktoken_bpe("tok.tiktoken"), **meta)

Ranks are our ids, so `enc.encode(text, allowed_special="all") == tok.encode(text)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_open
from ..tokenizer.interop import tiktoken_meta, tiktoken_ranks_text, tiktoken_sidecar


def write_tiktoken(tok, path: str | Path, name: str | None = None) -> list[Path]:
    """Write the ranks file and its sidecar (each atomically); -> the two paths."""
    path = Path(path)
    meta = tiktoken_meta(tok, name or path.stem)
    sidecar = Path(tiktoken_sidecar(str(path)))
    with atomic_open(path, "w") as f:
        f.write(tiktoken_ranks_text(tok))
    with atomic_open(sidecar, "w") as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return [path, sidecar]
