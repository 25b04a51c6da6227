"""Q&A pairs packed into fixed-length training rows, with answer-only loss masks.

A row holds T+1 tokens: whole pairs laid end to end (a pair never straddles two
rows when it fits in one), the rest <PAD>. x = row[:-1], y = row[1:], and y is
IGNORE_INDEX wherever the position is padding or, with loss_on='answer', part of
the prompt: only the answer tokens and the closing <EOS> are scored.

Two views of the same pairs:
  * indexing (`ds[i]`, what `create_dataloader` uses) packs the pairs once, in file
    order: one pass over the rows is one epoch;
  * `sample` (what the trainer uses) packs a fresh random order for every batch.
    A pair packed at a fixed place always follows the same pairs at the same
    offset, and a small model learns that context instead of the question; then
    it fails when asked at position 0 with nothing before, as `generate` does
    (the demo set, demo-sized model: fixed rows reproduced 35 of 72 answers after
    640 steps, repacked rows all 72 after 300).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ..errors import TinyLLMError
from ..model.loss import IGNORE_INDEX
from .qa import QAPair
from .tokens import part_bounds

LOOKAHEAD = 64  # pairs scanned for one that fills a row's leftover space


def encode_pairs(tokenizer, pairs: list[QAPair]) -> list[tuple[list[int], int]]:
    """-> [(ids, prompt_length)] per pair, in one encode_batch call (threaded in the C++ core). The
    prompt and answer are encoded apart so that the prompt's ids are exactly those `tinyllm generate`
    feeds for the same question."""
    texts = [t for p in pairs for t in (p.prompt(), f" {p.answer} <EOS>")]
    ids = tokenizer.encode_batch(texts)
    return [(ids[2 * i] + ids[2 * i + 1], len(ids[2 * i])) for i in range(len(pairs))]


class PackedQADataset(torch.utils.data.Dataset):
    packs_per_batch = True  # the trainer's sampler calls sample(gen, B, part, parts), not ds[i]

    def __init__(self, pairs: list[QAPair], tokenizer, context_length: int, loss_on: str = "answer", name: str = "qa"):
        if not pairs:
            raise TinyLLMError(f"{name}: no question/answer pairs")
        if loss_on not in ("answer", "all"):
            raise TinyLLMError(f"loss_on must be 'answer' or 'all', got {loss_on!r}")
        self.T = context_length
        self.row_len = row_len = context_length + 1  # x and y are the row shifted by one
        self.pad_id = tokenizer.pad_id
        self.ids: list[np.ndarray] = []  # per pair, int64
        self.scored: list[np.ndarray] = []  # per pair, bool: is this token a target worth scoring
        truncated = []
        for k, (pair, (ids, n_prompt)) in enumerate(zip(pairs, encode_pairs(tokenizer, pairs))):
            scored = np.arange(len(ids)) >= n_prompt if loss_on == "answer" else np.ones(len(ids), bool)
            if len(ids) > row_len:
                truncated.append(pair.index if pair.index is not None else k)
                ids, scored = ids[:row_len], scored[:row_len]
            self.ids.append(np.asarray(ids, dtype=np.int64))
            self.scored.append(scored)
        self.truncated = truncated
        if truncated:
            shown = ", ".join(map(str, truncated[:10])) + (", ..." if len(truncated) > 10 else "")
            print(
                f"warning: {name}: {len(truncated)} of {len(pairs)} pairs are longer than the context "
                f"({context_length} tokens + 1) and were truncated, losing the end of their answers "
                f"(records {shown}); raise --context_length",
                file=sys.stderr,
            )
        self.num_pairs = len(pairs)
        self.rows = self._pack(range(len(pairs)))  # file order, for indexing

    def _pack(self, order) -> list[list[int]]:
        """Group pair indices into rows, in `order`; when the next pair does not fit in
        what is left of a row, a later one that does is pulled forward (less padding)."""
        return list(self._rows_from(iter(order)))

    def _rows_from(self, stream):
        """Rows (lists of pair indices) filled from an iterator of pair indices."""
        pending: list[int] = []
        cur, free = [], self.row_len
        while True:
            while len(pending) < LOOKAHEAD:  # keep a window of candidates
                k = next(stream, None)
                if k is None:
                    break
                pending.append(k)
            if not pending:
                break
            j = next((j for j, k in enumerate(pending) if len(self.ids[k]) <= free), None)
            if j is None:  # nothing left fits: close the row
                yield cur
                cur, free = [], self.row_len
                continue
            k = pending.pop(j)
            cur.append(k)
            free -= len(self.ids[k])
        if cur:
            yield cur

    def _row(self, pair_idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = np.full(self.row_len, self.pad_id, dtype=np.int64)
        scored = np.zeros(self.row_len, dtype=bool)
        pos = 0
        for k in pair_idx:
            n = len(self.ids[k])
            tokens[pos : pos + n] = self.ids[k]
            scored[pos : pos + n] = self.scored[k]
            pos += n
        row = torch.from_numpy(tokens)
        y = row[1:].clone()
        y[~torch.from_numpy(scored[1:])] = IGNORE_INDEX  # the target at t is token t+1
        return row[:-1].clone(), y

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens over all pairs."""
        return int(sum(len(a) for a in self.ids))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self.rows):
            raise IndexError(i)
        return self._row(self.rows[i])

    def sample(
        self, gen: torch.Generator, batch_size: int, part: int = 0, parts: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """batch_size rows packed from a fresh shuffle of the pairs -> x, y: (B, T) int64.

        The pairs come in shuffled passes (each pass a permutation, so a small set
        shows every pair before any repeats); with parts > 1 only the pairs of slice
        `part` of `parts` (micro-batch g of G under torchrun). The order comes from
        `gen` alone, so a batch depends only on the seed and (part, parts).
        """
        lo, hi = part_bounds(self.num_pairs, part, parts)  # never empty, even with more parts than pairs
        n = hi - lo

        def stream():
            while True:
                if n <= 1 << 16:
                    yield from (lo + torch.randperm(n, generator=gen)).tolist()
                else:  # a large set: draw with replacement, not a permutation of it all per batch
                    yield from (lo + torch.randint(0, n, (batch_size * 8,), generator=gen)).tolist()

        rows = self._rows_from(stream())
        xs, ys = zip(*(self._row(next(rows)) for _ in range(batch_size)))
        return torch.stack(xs), torch.stack(ys)
