"""Parameter + gradient + AdamW bytes per rank for the presets under DDP and FSDP on 1, 2, 8 ranks.

Computed from the sharding: each preset is built on the meta device (no memory), and every tensor is
counted as a rank holds it. DDP: the whole tensor on every rank. FSDP2 (fully_shard): dim 0 split
into world_size chunks of ceil(d0 / world_size) rows (the last rank's chunk is what is left), so the
largest rank (rank 0) is reported. Per parameter element: fp32 weight + fp32 gradient + AdamW's two
fp32 moments = 16 bytes, plus AdamW's per-tensor step counter (4 bytes, not sharded). On CUDA the
bf16 compute copies FSDP gathers per block are transient and not counted.

    python benchmarks/fsdp_bytes.py                     # the table (markdown)
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 benchmarks/fsdp_bytes.py --measure demo
        # also measure it: fully_shard the preset on CPU ranks (gloo), one AdamW step on random
        # tokens, then count the local shards (DTensor.to_local()) of weights, gradients and state
"""

from __future__ import annotations

import argparse
import math

import torch

from tinyllm.model import TinyLLM
from tinyllm.train.presets import PRESETS

RANKS = (1, 2, 8)


def meta_model(name: str) -> TinyLLM:
    with torch.device("meta"):
        return TinyLLM(PRESETS[name].model)


def bytes_per_rank(model: TinyLLM, world: int, sharded: bool) -> int:
    """Rank 0's weights + gradients + AdamW moments (fp32) + step counters, in bytes."""
    total = 0
    for p in model.parameters():  # the tied embedding / head once
        rows = math.ceil(p.shape[0] / world) if sharded else p.shape[0]
        total += 16 * rows * (p.numel() // p.shape[0]) + 4
    return total


def table() -> str:
    head = "| preset | params | " + " | ".join(f"ddp x{k} | fsdp x{k}" for k in RANKS) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(RANKS))]
    for name in PRESETS:
        m = meta_model(name)
        cells = [f"{bytes_per_rank(m, k, s) / 2**20:,.1f} MiB" for k in RANKS for s in (False, True)]
        lines.append(f"| {name} | {m.num_params() / 1e6:.2f}M | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(name: str) -> None:
    import torch.distributed as dist

    from tinyllm.train.parallel import local_bytes, shard_model

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    cfg = PRESETS[name].model
    model = TinyLLM(cfg, device="cpu")
    shard_model(model, torch.device("cpu"), compile_blocks=False)
    opt = model.configure_optimizer(1e-3, 0.1)
    x = torch.randint(0, cfg.vocab_size, (2, cfg.context_length))
    _, loss = model(x, x, return_logits=False)
    loss.backward()
    opt.step()
    measured = sum(local_bytes(model, opt).values())
    computed = bytes_per_rank(meta_model(name), world, sharded=True)
    full = bytes_per_rank(meta_model(name), 1, sharded=False)
    rows = [None] * world
    dist.all_gather_object(rows, (rank, measured))
    if rank == 0:
        for r, b in rows:
            print(f"{name}, fsdp x{world}, rank {r}: measured {b:,} bytes ({b / full:.3f} of ddp's {full:,})")
        print(f"computed for rank 0: {computed:,} bytes")
    dist.destroy_process_group()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", metavar="PRESET", choices=list(PRESETS), help="under torchrun: measure it too")
    args = ap.parse_args()
    if args.measure:
        measure(args.measure)
    else:
        print(table())
