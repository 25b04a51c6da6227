"""The checkpoint schema: `TrainState`, versioned, written atomically, read with clear errors.

A checkpoint file is one torch.save'd dict (nanoGPT's habit), read back with
weights_only=True:

    format          "tinyllm-checkpoint"
    version         FORMAT_VERSION (2); version 1 files are converted on load
    model           the model's state_dict (tied head stored once, as torch stores it)
    model_config    ModelConfig.to_dict() of the weights
    model_request   the model the run asked for (preset + flags), checked on --resume
    tokenizer       the tokenizer file's text (Tokenizer.to_str)
    optimizer       AdamW's state_dict (None in an inference-only export)
    train_config    TrainConfig.to_dict() of the run
    step            optimizer steps done
    best_val_loss   lowest val loss seen so far
    data_position   DataPosition: where the batch stream stands (see batches.py)
    rng_per_rank    every RNG state of every rank, rank 0 first
    is_qa           trained on Q&A pairs (generate/chat wrap prompts in the template)

The sharded checkpoint (FSDP + torch.distributed.checkpoint, sharded.py) is a folder holding the
same state: `tensors()` is what DCP shards, `meta()` is the rest, written by rank 0 as meta.pt.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import TinyLLMError
from ..io import atomic_save_torch

FORMAT = "tinyllm-checkpoint"
FORMAT_VERSION = 2
REQUIRED = ("model", "model_config", "tokenizer")


@dataclass
class DataPosition:
    """Where the run's batch stream stands: step s's batches depend on these alone (batches.py)."""

    next_step: int = 0
    """The step whose batches come next."""
    seed: int = 0
    """TrainConfig.seed: it seeds every batch."""
    micro_batches_per_step: int = 1
    """world_size x grad_accumulation_steps: how many slices the data is cut into."""
    world_size: int = 1
    grad_accumulation_steps: int = 1
    batch_size: int = 1


@dataclass
class TrainState:
    """Everything a run needs to continue exactly, or a model needs to be used."""

    model: dict
    model_config: dict
    tokenizer: str
    optimizer: dict | None = None
    model_request: dict | None = None
    train_config: dict | None = None
    step: int = 0
    best_val_loss: float = float("inf")
    data_position: DataPosition = field(default_factory=DataPosition)
    rng_per_rank: list = field(default_factory=list)
    is_qa: bool = False

    def tensors(self) -> dict:
        """The large part (what a sharded checkpoint splits over ranks)."""
        return {"model": self.model, "optimizer": self.optimizer}

    def meta(self) -> dict:
        """Everything but the tensors (small, the same on every rank)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("model", "optimizer")}
        d["data_position"] = dataclasses.asdict(self.data_position)
        return d

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, **self.tensors(), **self.meta()}

    def save(self, path: str | Path) -> None:
        """Write through a temp file and a rename: a crash mid-write leaves the previous file intact."""
        atomic_save_torch(self.to_dict(), path)

    @classmethod
    def from_dict(cls, d: dict, source: str = "checkpoint") -> TrainState:
        d = upgrade(d, source)
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in d.items() if k in known}
        fields["data_position"] = DataPosition(**(d.get("data_position") or {}))
        return cls(**fields)

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> TrainState:
        """Read a checkpoint file; TinyLLMError naming the file when missing, truncated, foreign
        or of a version this tinyllm cannot read."""
        return cls.from_dict(read_file(path, map_location), str(path))


def read_file(path: str | Path, map_location="cpu") -> dict:
    """The raw dict of a checkpoint file (any version); TinyLLMError when missing, truncated or not ours."""
    path = Path(path)
    if not path.exists():
        raise TinyLLMError(f"{path}: no such checkpoint")
    if path.is_dir():
        if (path / "meta.pt").exists() or (path / "latest.dcp").exists():  # sharded.py's layout (FSDP)
            run = path if (path / "latest.dcp").exists() else path.resolve().parent.parent
            raise TinyLLMError(
                f"{path}: is a sharded (FSDP) checkpoint; make one file of it first: "
                f"tinyllm checkpoint consolidate {run} --out {run / 'consolidated.pt'}"
            )
        raise TinyLLMError(f"{path}: is a directory, expected a checkpoint file (e.g. {path / 'best.pt'})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch.load on a foreign file fails in many ways (KeyError, UnpicklingError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinyLLMError(f"{path}: not a readable checkpoint (truncated or corrupt: {first[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TinyLLMError(f"{path}: not a tinyllm checkpoint (no '{FORMAT}' format marker)")
    return ckpt


def upgrade(d: dict, source: str) -> dict:
    """A checkpoint dict of any readable version -> the current version's fields."""
    version = d.get("version")
    if version == 1:  # v1 kept rank 0's RNG twice ('rng'), and wrote lr_schedule / n_params, which nothing read
        ranks = d.get("rng_per_rank") or ([d["rng"]] if "rng" in d else [])
        d = {k: v for k, v in d.items() if k not in ("rng", "lr_schedule", "n_params")}
        d["rng_per_rank"] = ranks
        d["version"] = version = FORMAT_VERSION
    if version != FORMAT_VERSION:
        raise TinyLLMError(
            f"{source}: checkpoint format version {version} is not supported (this tinyllm "
            f"reads versions 1 and {FORMAT_VERSION}; a newer tinyllm wrote it?)"
        )
    for key in REQUIRED:
        if key not in d:
            raise TinyLLMError(f"{source}: checkpoint is missing '{key}'")
    return d


def rng_state() -> dict:
    """Every RNG a training step touches, in a form torch.load(weights_only=True) accepts."""
    version, keys, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": list(keys) + [gauss if gauss is not None else -1],
        "python_version": version,
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()  # this rank's device only: restarts may see fewer GPUs
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    gauss = None if py[-1] == -1 else py[-1]
    random.setstate((state["python_version"], tuple(int(v) for v in py[:-1]), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        torch.cuda.set_rng_state(cuda if isinstance(cuda, torch.Tensor) else cuda[0])


def clean_stale_temp(out_dir: Path) -> list[Path]:
    """Remove temp files a killed run left behind (`.latest.pt.XXXX.tmp`, ...); -> what was removed."""
    stale = [*Path(out_dir).glob(".*.pt.*.tmp"), *Path(out_dir).glob("checkpoints/*.tmp")]
    stale = list(dict.fromkeys(stale))  # also matches checkpoints/.step_N.dcp.tmp/, a sharded save cut short
    for f in stale:
        shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True)
    return stale


def keep_history(latest: Path, history_dir: Path, step: int, keep: int) -> None:
    """Keep a copy of `latest` as history_dir/step_XXXXXXX.pt (a hard link when possible)
    and delete all but the newest `keep` of them. The copy is renamed into place, so a
    history file is always whole."""
    history_dir.mkdir(parents=True, exist_ok=True)
    dst = history_dir / f"step_{step:07d}.pt"
    tmp = dst.with_suffix(".pt.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(latest, tmp)
    except OSError:
        shutil.copyfile(latest, tmp)
    os.replace(tmp, dst)
    history = sorted(history_dir.glob("step_*.pt"))
    # a later step than this one is left from an earlier, longer run in the same out_dir:
    # it must not outlive (and push out) this run's checkpoints
    stale = [p for p in history if p.name > dst.name]
    for old in stale + [p for p in history if p not in stale][:-keep]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", attention: str | None = None):
    """Load a checkpoint for use: -> (model in eval mode, tokenizer, info dict).

    info holds the state's small fields (step, best_val_loss, train_config, is_qa, ...).
    """
    from ..model import ModelConfig, TinyLLM
    from ..tokenizer import Tokenizer

    state = TrainState.load(path)
    cfg_dict = dict(state.model_config)
    if attention is not None:
        cfg_dict["attention"] = attention
    model = TinyLLM(ModelConfig.from_dict(cfg_dict), device=device)
    load_weights(model, state.model, str(path))
    model.eval()
    try:
        tokenizer = Tokenizer.from_str(state.tokenizer)
    except TinyLLMError as e:
        raise TinyLLMError(f"{path}: embedded tokenizer: {e}") from None
    info = {k: v for k, v in state.meta().items() if k not in ("tokenizer", "rng_per_rank")}
    return model, tokenizer, info


def load_weights(model: torch.nn.Module, weights: dict, source: str) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise TinyLLMError(f"{source}: weights do not match its model config ({str(e).splitlines()[0]})") from None


def config_mismatch(saved: dict, current: dict, fields=None) -> list[str]:
    """Fields (all, or those named in `fields`) whose values differ between two model-config
    dicts, ignoring the attention backend and dropout, which do not change the weights."""
    skip = {"attention", "dropout"}
    keys = sorted(set(saved) | set(current)) if fields is None else sorted(fields)
    return [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
        for k in keys
        if k not in skip and saved.get(k) != current.get(k)
    ]
