"""Which training windows a micro-step reads.

A step is G = world_size * grad_accumulation_steps micro-batches; global micro-batch
g = rank * accum + micro draws batch_size random windows from part g of G equal
slices of the token stream, with a generator seeded by (seed, step, g). So:

- each rank reads only its own contiguous 1/world_size slice of the token memmap;
- a batch depends on (seed, step, g, G) alone: a resumed run replays the batches the
  uninterrupted run would have seen, and 2 ranks x A micro-steps read exactly the samples
  of 1 rank x 2A micro-steps (the DDP equivalence test relies on it);
- with G = 1 the draw is TokenDataset.sample's, window for window.
"""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def part_bounds(n: int, part: int, parts: int) -> tuple[int, int]:
    """[lo, hi) of part `part` of `parts` near-equal slices of range(n); never empty when n >= 1
    (tiny data with more parts than items: neighbouring parts share an item)."""
    lo = part * n // parts
    return lo, max(lo + 1, (part + 1) * n // parts)


def slice_batch(ds, gen: torch.Generator, batch_size: int, part: int = 0, parts: int = 1):
    """batch_size random samples of ds from slice `part` of `parts` -> x, y: (B, T) int64."""
    if getattr(ds, "packs_per_batch", False):  # packed Q&A: it packs rows from its own slice of the pairs
        return ds.sample(gen, batch_size, part, parts)
    if hasattr(ds, "arrays"):  # TokenDataset: windows may start anywhere in the slice of the stream
        T = ds.T
        starts = np.array([max(0, len(a) - T) for a in ds.arrays], dtype=np.int64)  # valid starts per array
        cum = np.cumsum(starts)
        lo, hi = part_bounds(int(cum[-1]), part, parts)
        picks = torch.randint(lo, hi, (batch_size,), generator=gen).numpy()
        xs, ys = [], []
        for p in picks:
            a = int(np.searchsorted(cum, p, side="right"))
            start = int(p) - (int(cum[a - 1]) if a else 0)
            chunk = torch.from_numpy(ds.arrays[a][start:start + T + 1].astype(np.int64))  # (T+1,)
            xs.append(chunk[:-1])
            ys.append(chunk[1:])
        return torch.stack(xs), torch.stack(ys)
    # other row datasets: whole rows of this slice
    lo, hi = part_bounds(len(ds), part, parts)
    idx = torch.randint(lo, hi, (batch_size,), generator=gen).tolist()
    xs, ys = zip(*(ds[i] for i in idx))
    return torch.stack(xs), torch.stack(ys)
