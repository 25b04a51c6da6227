"""What training reports: metrics.jsonl rows, and the throughput shown in the progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..io import atomic_open


class MetricsLog:
    """OUT_DIR/metrics.jsonl, one JSON row per evaluation, written by rank 0 only.

    A fresh run starts a fresh log; a resumed one drops the rows a killed run logged after its
    last checkpoint (they are about to be redone), so every evaluation appears once."""

    def __init__(self, path: Path, writer: bool, resumed_at: int | None):
        self.path, self.writer = Path(path), writer
        if not writer or not self.path.exists():
            return
        if resumed_at is None:
            self.path.unlink()
            return
        rows = [r for r in self.path.read_text().splitlines() if r.strip() and json.loads(r)["step"] <= resumed_at]
        with atomic_open(self.path) as f:
            f.writelines(r + "\n" for r in rows)

    def append(self, row: dict) -> None:
        if self.writer:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


class Throughput:
    """Training tokens/s, refreshed about twice a second; evaluation and checkpoint time excluded
    (call `restart` after them)."""

    def __init__(self, tokens_per_step: int, device: torch.device):
        self.tokens_per_step, self.device = tokens_per_step, device
        self.restart()
        self.tokens_per_sec: float | None = None

    def restart(self) -> None:
        self.t_last, self.steps = time.perf_counter(), 0

    def step_done(self, force: bool) -> bool:
        """Count a step; -> True when tokens_per_sec was refreshed."""
        self.steps += 1
        now = time.perf_counter()
        if not force and now - self.t_last <= 0.5:
            return False
        if self.device.type == "cuda":  # kernels still queued belong to these steps
            torch.cuda.synchronize()
            now = time.perf_counter()
        self.tokens_per_sec = self.steps * self.tokens_per_step / (now - self.t_last)
        self.t_last, self.steps = now, 0
        return True


def progress_bar(total: int, initial: int, shown: bool):
    """The training progress bar on stderr (tqdm), or a silent one."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="training",
        unit="step",
        file=sys.stderr,
        disable=not shown,
        dynamic_ncols=True,
    )


def model_summary(model, device, dist, amp_dtype, cfg) -> str:
    """The run's one-line description of what trains where."""
    c = model.config
    return (
        f"model: {model.num_params() / 1e6:.2f}M parameters ({c.d_model}d, {c.n_layers} layers, {c.n_heads} heads, "
        f"{model.backend} attention) on {device}"
        + (f" x {dist.world_size} ranks" if dist.enabled else "")
        + (", bf16 autocast" if amp_dtype == torch.bfloat16 else "")
        + (", compiled" if cfg.compile else "")
        + (", FSDP" if cfg.parallel == "fsdp" else "")
        + (", activation checkpointing" if cfg.activation_checkpointing == "full" else "")
    )
