"""Data: text corpora, Q&A JSON, memmapped token files, and TinyLLM's entry points."""

from __future__ import annotations

from pathlib import Path

import torch

from .corpus import bible_verses, load_documents
from .packed import PackedQADataset
from .pipeline import build_token_files, load_corpus, split_documents
from .qa import QAPair, format_prompt, load_qa
from .tokens import TokenDataset, unigram_entropy

__all__ = ["prepare_custom_data", "create_dataloader", "load_qa", "QAPair", "format_prompt", "TokenDataset",
           "PackedQADataset", "load_corpus", "load_documents", "bible_verses", "build_token_files",
           "split_documents", "unigram_entropy"]


def prepare_custom_data(json_path: str | Path, vocab_size: int = 2000, context_length: int = 128,
                        force_retrain_tokenizer: bool = False, loss_on: str = "answer",
                        tokenizer_path: str | Path | None = None):
    """TinyLLM's entry point: Q&A JSON -> (train_ds, val_ds, tokenizer).

    The tokenizer is trained on the pairs and cached next to the data as
    `<json stem>.tokenizer.txt` (or at tokenizer_path); force_retrain_tokenizer retrains it.
    Datasets yield (x, y) with y = x shifted by one, prompt positions of y set to -100
    when loss_on='answer'.
    """
    from ..tokenizer import Tokenizer

    json_path = Path(json_path)
    pairs = load_qa(json_path)
    tok_path = Path(tokenizer_path) if tokenizer_path else json_path.with_name(json_path.stem + ".tokenizer.txt")
    tok = None
    if tok_path.exists() and not force_retrain_tokenizer:
        tok = Tokenizer.load(tok_path)
        if tok.vocab_size != vocab_size:
            tok = None  # asked for another size: retrain
    if tok is None:
        corpus = load_corpus(json_path)
        tok = Tokenizer.train(corpus.tokenizer_texts(), vocab_size=vocab_size, show_progress=False)
        tok.save(tok_path)
    train_pairs, val_pairs = split_documents(pairs)
    train_ds = PackedQADataset(train_pairs, tok, context_length, loss_on, f"{json_path} (train)")
    val_ds = PackedQADataset(val_pairs, tok, context_length, loss_on, f"{json_path} (val)")
    return train_ds, val_ds, tok


def create_dataloader(dataset, batch_size: int = 8, shuffle: bool = True, drop_last: bool = False,
                      num_workers: int = 0, seed: int | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader over (x, y) windows of a TokenDataset or PackedQADataset."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                       num_workers=num_workers, generator=gen)
