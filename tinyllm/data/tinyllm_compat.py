"""TinyLLM's Python entry points, kept so its notebooks and scripts run unchanged:

from tinyllm.data import prepare_custom_data, create_dataloader
"""

from __future__ import annotations

from pathlib import Path

import torch

from .corpus import Corpus, split_documents
from .packed import PackedQADataset
from .qa import DEMO_QA, demo_qa_path, load_qa, resolve_qa_source


def prepare_custom_data(
    json_path: str | Path,
    vocab_size: int = 2000,
    context_length: int = 128,
    force_retrain_tokenizer: bool = False,
    loss_on: str = "answer",
    tokenizer_path: str | Path | None = None,
):
    """TinyLLM's entry point: Q&A JSON (or 'qa', the shipped demo set) -> (train_ds, val_ds, tokenizer).

    The tokenizer is trained on the pairs and cached next to the data as
    `<json stem>.tokenizer.txt` (or at tokenizer_path), and reused on the next call
    unless force_retrain_tokenizer is set or vocab_size changed. One pair in ten is
    held out for validation. The datasets yield (x, y): (T,) int64 with y = x shifted
    by one; positions that are not scored hold -100 (padding always; the question too
    when loss_on='answer'), which F.cross_entropy ignores by default.
    """
    from ..tokenizer import Tokenizer

    json_path = Path(resolve_qa_source(str(json_path)))
    pairs = load_qa(json_path)
    if tokenizer_path is not None:
        tok_path = Path(tokenizer_path)
    elif json_path == demo_qa_path():  # never write into the installed package
        tok_path = Path(DEMO_QA + ".tokenizer.txt")
    else:
        tok_path = json_path.with_name(json_path.stem + ".tokenizer.txt")
    tok = None
    if tok_path.exists() and not force_retrain_tokenizer:
        tok = Tokenizer.load(tok_path)
        if tok.vocab_size != vocab_size:
            tok = None  # asked for another size: retrain
    if tok is None:
        corpus = Corpus(str(json_path), [p.text() for p in pairs], pairs=pairs)
        tok = Tokenizer.train(corpus.tokenizer_texts(), vocab_size=vocab_size, show_progress=False)
        tok.save(tok_path)
    train_pairs, val_pairs = split_documents(pairs, keep_all=True)
    train_ds = PackedQADataset(train_pairs, tok, context_length, loss_on, f"{json_path} (train)")
    val_ds = PackedQADataset(val_pairs, tok, context_length, loss_on, f"{json_path} (val)")
    return train_ds, val_ds, tok


def create_dataloader(
    dataset,
    batch_size: int = 8,
    shuffle: bool = True,
    drop_last: bool = False,
    num_workers: int = 0,
    seed: int | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader over (x, y) windows of a TokenDataset or PackedQADataset."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers, generator=gen
    )
