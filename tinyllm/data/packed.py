"""Q&A pairs packed into fixed training rows, with answer-only loss masks.

A row holds T+1 tokens: whole pairs laid end to end (a pair never straddles two
rows when it fits in one), the rest <PAD>. x = row[:-1], y = row[1:], and y is
IGNORE_INDEX wherever the position is padding or, with loss_on='answer', part of
the prompt: only the answer tokens and the closing <EOS> are scored.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ..errors import TinyLLMError
from .qa import QAPair

IGNORE_INDEX = -100


def encode_pair(tokenizer, pair: QAPair) -> tuple[list[int], int]:
    """-> (ids, prompt_length). The prompt and answer are encoded apart so that the
    prompt's ids are exactly those `tinyllm generate` feeds for the same question."""
    prompt = tokenizer.encode(pair.prompt())
    answer = tokenizer.encode(f" {pair.answer} <EOS>")
    return prompt + answer, len(prompt)


class PackedQADataset(torch.utils.data.Dataset):
    def __init__(self, pairs: list[QAPair], tokenizer, context_length: int, loss_on: str = "answer",
                 name: str = "qa"):
        if not pairs:
            raise TinyLLMError(f"{name}: no question/answer pairs")
        self.T = context_length
        row_len = context_length + 1
        pad = tokenizer.pad_id
        rows, masks = [], []
        cur, cur_mask = [], []
        truncated = 0
        for pair in pairs:
            ids, n_prompt = encode_pair(tokenizer, pair)
            scored = [loss_on == "all" or i >= n_prompt for i in range(len(ids))]
            if len(ids) > row_len:
                truncated += 1
                ids, scored = ids[:row_len], scored[:row_len]
            if len(cur) + len(ids) > row_len:
                rows.append(cur)
                masks.append(cur_mask)
                cur, cur_mask = [], []
            cur, cur_mask = cur + ids, cur_mask + scored
        rows.append(cur)
        masks.append(cur_mask)
        self.truncated = truncated
        if truncated:
            print(f"warning: {name}: {truncated} of {len(pairs)} pairs are longer than context_length+1 "
                  f"({row_len} tokens) and were truncated", file=sys.stderr)
        self.tokens = np.full((len(rows), row_len), pad, dtype=np.int64)
        self.scored = np.zeros((len(rows), row_len), dtype=bool)
        for i, (r, m) in enumerate(zip(rows, masks)):
            self.tokens[i, :len(r)] = r
            self.scored[i, :len(m)] = m
        self.num_pairs = len(pairs)

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.size)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int):
        row = torch.from_numpy(self.tokens[i])
        y = row[1:].clone()
        y[~torch.from_numpy(self.scored[i, 1:])] = IGNORE_INDEX  # the target at t is token t+1
        return row[:-1].clone(), y

    def sample(self, gen: torch.Generator, batch_size: int):
        idx = torch.randint(0, len(self), (batch_size,), generator=gen).tolist()
        xs, ys = zip(*(self[i] for i in idx))
        return torch.stack(xs), torch.stack(ys)
