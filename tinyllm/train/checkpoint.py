"""Checkpoints: one dict (model, optimizer, configs, step, tokenizer, RNG states),
written atomically, loaded with clear errors for truncated or foreign files."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import TinyLLMError
from ..io import atomic_save_torch

FORMAT = "tinyllm-checkpoint"
VERSION = 1


def rng_state() -> dict:
    """Every RNG a training step touches, in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]) + [random.getstate()[2] if random.getstate()[2] is not None else -1],
        "python_version": random.getstate()[0],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
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


def save_checkpoint(path: str | Path, **fields) -> None:
    """Write through a temp file and a rename: a crash mid-write leaves the previous file intact."""
    atomic_save_torch({"format": FORMAT, "version": VERSION, **fields}, path)


def clean_stale_temp(out_dir: Path) -> list[Path]:
    """Remove temp files a killed run left behind (`.latest.pt.XXXX.tmp`, ...); -> what was removed."""
    stale = [*Path(out_dir).glob(".*.pt.*.tmp"), *Path(out_dir).glob("checkpoints/*.tmp")]
    for f in stale:
        f.unlink(missing_ok=True)
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


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The raw checkpoint dict; TinyLLMError when missing, truncated or not ours."""
    path = Path(path)
    if not path.exists():
        raise TinyLLMError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise TinyLLMError(f"{path}: is a directory, expected a checkpoint file (e.g. {path / 'best.pt'})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch.load on a foreign file fails in many ways (KeyError, UnpicklingError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinyLLMError(f"{path}: not a readable checkpoint (truncated or corrupt: {first[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TinyLLMError(f"{path}: not a tinyllm checkpoint (no '{FORMAT}' format marker)")
    if ckpt.get("version") != VERSION:
        raise TinyLLMError(f"{path}: checkpoint format version {ckpt.get('version')} is not supported "
                           f"(this tinyllm reads version {VERSION})")
    for key in ("model", "model_config", "tokenizer"):
        if key not in ckpt:
            raise TinyLLMError(f"{path}: checkpoint is missing '{key}'")
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", attention: str | None = None):
    """Load a checkpoint for use: -> (model in eval mode, tokenizer, info dict).

    info holds everything else: step, best_val_loss, train_config, is_qa, ...
    """
    from ..model import ModelConfig, TinyLLM
    from ..tokenizer import Tokenizer

    ckpt = read_checkpoint(path)
    cfg_dict = dict(ckpt["model_config"])
    if attention is not None:
        cfg_dict["attention"] = attention
    cfg = ModelConfig.from_dict(cfg_dict)
    model = TinyLLM(cfg, device=device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise TinyLLMError(f"{path}: weights do not match the stored model config ({str(e).splitlines()[0]})") from None
    model.eval()
    try:
        tokenizer = Tokenizer.from_str(ckpt["tokenizer"])
    except TinyLLMError as e:
        raise TinyLLMError(f"{path}: embedded tokenizer: {e}") from None
    info = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "tokenizer", "rng")}
    return model, tokenizer, info


def config_mismatch(saved: dict, current: dict, fields=None) -> list[str]:
    """Fields (all, or those named in `fields`) whose values differ between two model-config
    dicts, ignoring the attention backend and dropout, which do not change the weights."""
    skip = {"attention", "dropout"}
    keys = sorted(set(saved) | set(current)) if fields is None else sorted(fields)
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
            for k in keys if k not in skip and saved.get(k) != current.get(k)]
