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

from ..data.tokens import TokenDataset, part_bounds


def derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def slice_batch(ds, gen: torch.Generator, batch_size: int, part: int = 0, parts: int = 1):
    """batch_size random samples of ds from slice `part` of `parts` -> x, y: (B, T) int64."""
    if getattr(ds, "packs_per_batch", False) or isinstance(ds, TokenDataset):
        # packed Q&A packs rows from its own slice of the pairs; a TokenDataset draws windows
        # starting anywhere in its slice of the stream
        return ds.sample(gen, batch_size, part, parts)
    # other row datasets: whole rows of this slice
    lo, hi = part_bounds(len(ds), part, parts)
    idx = torch.randint(lo, hi, (batch_size,), generator=gen).tolist()
    xs, ys = zip(*(ds[i] for i in idx))
    return torch.stack(xs), torch.stack(ys)
