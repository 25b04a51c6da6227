"""Sharded checkpoints (FSDP): the same TrainState as a checkpoint file, written by every rank with
torch.distributed.checkpoint (DCP) and resharded by DCP when read on another number of ranks.

    OUT/checkpoints/step_0000040.dcp/   one folder per saved step (the last --keep_checkpoints kept)
        .metadata                       DCP's index: which shard file holds which piece of which tensor
        __0_0.distcp, __1_0.distcp ...  rank r's shard of the model and the AdamW state
        meta.pt                         TrainState.meta() (step, data position, RNG of every rank,
                                        tokenizer, configs), written by rank 0
    OUT/latest.dcp -> checkpoints/step_0000040.dcp   a symlink, swapped by a rename

A save goes into checkpoints/.step_N.dcp.tmp/, which is renamed to step_N.dcp once every rank's
shard and meta.pt are in, and only then is latest.dcp pointed at it: a save killed half-way leaves
a temp folder (removed by the next run) and the previous checkpoint in place.

`consolidate(folder, path)` turns one into the ordinary single file (TrainState.save) that generate,
chat, serve and export read; `tinyllm checkpoint consolidate` runs it.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import torch

from ..errors import TinyLLMError
from ..io import atomic_save_torch
from .checkpoint import FORMAT, FORMAT_VERSION, TrainState

LATEST = "latest.dcp"
META = "meta.pt"


def is_sharded(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / META).exists()


def model_and_optim_state(model, optimizer) -> dict:
    """{'model': ..., 'optimizer': ...} keyed by parameter names (DTensor shards under FSDP, full
    tensors for a plain model): what DCP writes, and the template it reads into."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, optimizer)
    return {"model": msd, "optimizer": osd}


def save(folder: Path, meta: dict, model, optimizer, dist, keep: int) -> None:
    """Every rank: write this rank's shard of step meta['step'] into OUT/checkpoints (see the module
    docstring for the atomic switch); rank 0 writes meta.pt and points latest.dcp at it."""
    import torch.distributed.checkpoint as dcp

    from . import distributed as dist_utils

    history = folder / "checkpoints"
    final = history / f"step_{meta['step']:07d}.dcp"
    tmp = history / f".{final.name}.tmp"
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist_utils.barrier(dist)
    dcp.save(model_and_optim_state(model, optimizer), checkpoint_id=str(tmp))
    if dist.is_main:
        atomic_save_torch({"format": FORMAT, "version": FORMAT_VERSION, "sharded": True, **meta}, tmp / META)
        shutil.rmtree(final, ignore_errors=True)  # left by an earlier, longer run in this folder
        os.replace(tmp, final)
        link = folder / f".{LATEST}.tmp"
        link.unlink(missing_ok=True)
        os.symlink(Path("checkpoints") / final.name, link)
        os.replace(link, folder / LATEST)  # the switch: latest.dcp now names the new step
        steps = sorted(history.glob("step_*.dcp"))
        stale = [p for p in steps if p.name > final.name]  # from an earlier, longer run
        for old in stale + [p for p in steps if p not in stale][:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    dist_utils.barrier(dist)


def read_meta(folder: Path) -> TrainState:
    """The TrainState of a sharded folder without its tensors (model = {}, optimizer = None);
    TinyLLMError naming the folder when meta.pt is damaged or a rank's shard file is missing."""
    folder = Path(folder)
    try:
        d = torch.load(folder / META, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TinyLLMError(f"{folder / META}: not readable ({str(e).strip().splitlines()[0][:120]})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise TinyLLMError(f"{folder / META}: not a tinyllm checkpoint (no '{FORMAT}' format marker)")
    check_shards(folder)
    return TrainState.from_dict({**d, "model": {}}, str(folder))


def check_shards(folder: Path) -> None:
    """Every shard file DCP's .metadata names must be there (rank r writes __r_0.distcp)."""
    from torch.distributed.checkpoint import FileSystemReader

    if not (folder / ".metadata").exists():
        raise TinyLLMError(f"{folder}: no .metadata (an incomplete sharded checkpoint)")
    files = sorted({info.relative_path for info in FileSystemReader(str(folder)).read_metadata().storage_data.values()})
    missing = [f for f in files if not (folder / f).exists()]
    if missing:
        ranks = ", ".join(f.split("_")[2] if f.startswith("__") else "?" for f in missing)
        raise TinyLLMError(
            f"{folder}: shard file {', '.join(missing)} (rank {ranks}) is missing: the checkpoint is incomplete"
        )


def load(folder: Path, model, optimizer) -> None:
    """Read a sharded folder into model + optimizer, however they are laid out now (FSDP on any
    number of ranks, or a plain model): DCP reads the pieces each rank needs."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    state = model_and_optim_state(model, optimizer)
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def load_full(state: TrainState, model, optimizer, build_plain) -> None:
    """A single-file checkpoint (DDP's latest.pt) into an FSDP model: each rank holds the full state
    and keeps its own shard. build_plain() -> (unsharded model, optimizer) to read it into first."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    plain, plain_opt = build_plain()
    plain.load_state_dict(state.model)
    plain_opt.load_state_dict(state.optimizer)
    msd, osd = get_state_dict(plain, plain_opt)  # keyed by name, as set_state_dict wants
    set_state_dict(
        model, optimizer, model_state_dict=msd, optim_state_dict=osd, options=StateDictOptions(full_state_dict=True)
    )


def full_model_state(model) -> dict:
    """All ranks (collective): the full weights, on rank 0's CPU ({} on the other ranks)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def resolve(path: Path) -> Path:
    """A run folder -> its latest.dcp; a step folder stays."""
    path = Path(path)
    if not is_sharded(path) and (path / LATEST).exists():
        return (path / LATEST).resolve()
    return path


def consolidate(src: Path, dst: Path) -> TrainState:
    """A sharded folder (or a run folder with latest.dcp) -> one checkpoint file, as a DDP run writes it."""
    from ..model import ModelConfig, TinyLLM
    from .config import TrainConfig

    folder = resolve(src)
    if not is_sharded(folder):
        raise TinyLLMError(f"{src}: not a sharded checkpoint (no {META}) nor a run folder with {LATEST}")
    state = read_meta(folder)
    model = TinyLLM(ModelConfig.from_dict(state.model_config), device="cpu")
    tc = TrainConfig(**{k: v for k, v in (state.train_config or {}).items() if k in TrainConfig.__dataclass_fields__})
    opt = model.configure_optimizer(tc.max_lr, tc.weight_decay)
    with warnings.catch_warnings():  # DCP's note that it reads in one process: that is the point here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        load(folder, model, opt)
    state.model, state.optimizer = model.state_dict(), opt.state_dict()
    state.save(dst)
    return state
