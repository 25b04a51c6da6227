"""A tokenizer as a Hugging Face tokenizer directory: tokenizer.json + tokenizer_config.json +
special_tokens_map.json, what `AutoTokenizer.from_pretrained(dir)` and
`tokenizers.Tokenizer.from_file(dir / "tokenizer.json")` load (the conversion itself, and its
one known difference, are in tinyllm/tokenizer/interop.py)."""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_open
from ..tokenizer.interop import hf_tokenizer_json

# transformers' names for our specials (ids 0..3)
SPECIAL_ROLES = {"pad_token": "<PAD>", "unk_token": "<UNK>", "bos_token": "<BOS>", "eos_token": "<EOS>"}


def tokenizer_config(model_max_length: int | None = None, chat_template: str | None = None) -> dict:
    """tokenizer_config.json: no BOS/EOS added on encode (our encode adds none), decode left as is."""
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **SPECIAL_ROLES,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,  # HF would otherwise drop the space in " ." when decoding
        "model_max_length": model_max_length or 1_000_000_000,
    }
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    return cfg


def write_hf_tokenizer(tok, directory: str | Path, model_max_length: int | None = None, chat_template=None) -> None:
    """Write the three files into `directory` (an export's temp directory; each file atomic)."""
    directory = Path(directory)
    files = {
        "tokenizer.json": hf_tokenizer_json(tok),
        "tokenizer_config.json": json.dumps(tokenizer_config(model_max_length, chat_template), indent=2),
        "special_tokens_map.json": json.dumps(SPECIAL_ROLES, indent=2),
    }
    for name, text in files.items():
        with atomic_open(directory / name, "w") as f:
            f.write(text + ("" if text.endswith("\n") else "\n"))
