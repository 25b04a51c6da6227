"""torchrun integration: read RANK / LOCAL_RANK / WORLD_SIZE, pick NCCL on CUDA and
gloo on CPU, and tear the process group down cleanly.

One machine:    torchrun --standalone --nproc_per_node=N -m tinyllm train ...
Several:        torchrun --nnodes=M --nproc_per_node=N --rdzv_backend=c10d \
                    --rdzv_endpoint=HOST:PORT --rdzv_id=JOB -m tinyllm train ...
Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    single_process_group: bool = False  # a group of one, made for FSDP outside torchrun (ours to destroy)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        from ..errors import TinyLLMError

        raise TinyLLMError(
            f"environment variable {name}={raw!r} is not an integer (is this a torchrun launch?)"
        ) from None


def dist_info() -> DistInfo:
    """This process's place in the job, from torchrun's environment (1 process when absent)."""
    world = _env_int("WORLD_SIZE", 1)
    info = DistInfo(_env_int("RANK", 0), _env_int("LOCAL_RANK", 0), world, _env_int("LOCAL_WORLD_SIZE", world))
    if not (0 <= info.rank < world and 0 <= info.local_rank < max(1, info.local_world_size)):
        from ..errors import TinyLLMError

        raise TinyLLMError(
            f"inconsistent torchrun environment: RANK={info.rank}, LOCAL_RANK={info.local_rank}, WORLD_SIZE={world}"
        )
    return info


def setup(device_pref: str, need_group: bool = False) -> tuple[DistInfo, torch.device]:
    """Initialise the process group when launched by torchrun; return (info, this rank's device).
    need_group (FSDP, which needs one even alone): one process without torchrun gets a group of one."""
    global _GROUP_MADE
    info = dist_info()
    device = resolve_device(device_pref)
    if device.type == "cuda" and info.enabled:
        if info.local_rank >= torch.cuda.device_count():
            from ..errors import TinyLLMError

            raise TinyLLMError(
                f"LOCAL_RANK {info.local_rank} but this machine has {torch.cuda.device_count()} "
                f"CUDA devices: use --nproc_per_node <= {torch.cuda.device_count()}"
            )
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cpu" and info.local_world_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        # N ranks on one machine share its cores: without this each would start one thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.local_world_size))
    if (info.enabled or need_group) and not dist.is_initialized():
        # torch.distributed.nn.functional's collectives take `group=group.WORLD` as a default argument,
        # evaluated when the module is first imported (FSDP imports it): imported after the group
        # exists, ten functions hold the world group forever, destroy_process_group cannot free it,
        # and its gloo threads run on into interpreter shutdown, where one can abort the process
        # ("terminate called without an active exception", rank 1, after a finished run). Imported
        # first, the defaults hold None.
        import torch.distributed.nn as _collectives  # noqa: F401  (binds no local `torch`)

        _GROUP_MADE = True  # one of the two branches below makes it
    if info.enabled and not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    elif need_group and not dist.is_initialized():
        # an in-memory store: no port, no rendezvous, nothing another process could join
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
        info.single_process_group = True
    return info, device


def resolve_device(pref: str) -> torch.device:
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(pref)
    except RuntimeError:
        from ..errors import TinyLLMError

        raise TinyLLMError(f"--device: unknown device {pref!r} (use auto, cpu, cuda or cuda:N)") from None
    from ..errors import TinyLLMError

    if device.type not in ("cpu", "cuda"):
        raise TinyLLMError(f"--device {pref}: tinyllm runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TinyLLMError("--device cuda: no CUDA device is available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TinyLLMError(f"--device {pref}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean_and_flag(stats: torch.Tensor, flag: bool, info: DistInfo) -> torch.Tensor:
    """stats = [a value to average over ranks, spare slot]: in one all-reduce, stats[0] becomes the
    mean over ranks and stats[1] > 0 on every rank if `flag` is true on any (a stop request seen by
    one rank stops all at the same step). Single process: stats[1] = flag, nothing else changes."""
    stats[1] = 1.0 if flag else 0.0  # a device-side fill: no host sync
    if info.enabled:
        dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        stats[0] /= info.world_size
    return stats


def gather_objects(obj, info: DistInfo) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (pickled; for small things like RNG states)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo):
    """Rank 0's obj on every rank (pickled; for small things like a tokenizer's text)."""
    if not info.enabled:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def teardown(info: DistInfo, clean: bool = True) -> None:
    """Destroy the process group (and with it its gloo threads: see setup's import). After a clean
    run, first wait for every rank, so that none leaves while another still writes its checkpoint."""
    if info.single_process_group and dist.is_initialized():
        dist.destroy_process_group()
    elif info.enabled and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


_GROUP_MADE = False  # setup() made a process group in this process


def exit_past_finalization(code: int) -> None:
    """For the CLI, once its command is done: a process that made a process group ends here, with
    os._exit, after what an ordinary exit runs first (its non-daemon threads joined, atexit handlers,
    stdout and stderr flushed) but without interpreter finalization. destroy_process_group frees a
    group only when nothing else holds it, and under FSDP torch's DTensor caches keep its
    DeviceMesh (and so the group) to the end: its gloo threads then run on while the interpreter
    tears itself down, and one that releases a finished collective's tensors there needs the GIL
    and aborts the process ("terminate called without an active exception", after the run's work
    is all saved; tests/exit_watch sees the state). Returns at once if no group was made."""
    if not _GROUP_MADE:
        return
    import atexit

    # what Py_Finalize runs before it tears anything down: threading's exit hooks (thread pools told
    # to stop) and the joins of non-daemon threads, then the atexit handlers
    getattr(threading, "_shutdown", lambda: None)()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`): nothing to lose
            stream.flush()
    os._exit(code)
