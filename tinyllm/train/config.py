"""Training configuration: one field per `tinyllm train` flag."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import TinyLLMError


@dataclass
class TrainConfig:
    """How to train. Flag names are TinyLLM's where it had them."""

    data: str = "bible"
    """'bible' (the KJV from pybible, offline), 'qa' (the demo Q&A set shipped in the package), a corpus file (.txt, .jsonl, .parquet, or .gz/.zst of .txt/.jsonl), a folder of them, a Q&A .json/.jsonl file, or a folder of shards from `tinyllm prepare`."""
    text_field: str = "text"
    """The field (JSON Lines) or column (Parquet) holding each record's text, when --data is such a corpus."""
    bad_records: str = "fail"
    """A JSON Lines line that is not JSON or lacks text_field (or a null Parquet value): 'fail' stops naming it, 'skip' skips it with a warning that counts them."""
    out_dir: str = "out"
    """Where checkpoints, metrics.jsonl, loss.png, the tokenizer and the tokenized data go."""
    tokenizer: str | None = None
    """An existing tokenizer file to use instead of training one on the corpus."""
    batch_size: int = 32
    """Sequences per micro-batch (per process under torchrun)."""
    max_iters: int = 5000
    """Optimizer steps in total."""
    max_lr: float = 6e-4
    """Peak learning rate, reached after warmup."""
    min_lr: float | None = None
    """Learning rate at the end of the cosine decay (default max_lr / 10)."""
    warmup_iters: int = 100
    """Steps of linear warmup from 0 to max_lr."""
    weight_decay: float = 0.1
    """AdamW weight decay, applied to matrices only."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""
    grad_accumulation_steps: int = 1
    """Micro-batches per optimizer step."""
    eval_interval: int = 250
    """Evaluate train/val loss every this many steps (and at the end)."""
    eval_iters: int = 20
    """Batches per loss estimate."""
    checkpoint_interval: int = 500
    """Write OUT_DIR/latest.pt every this many steps (and at the end)."""
    keep_checkpoints: int = 3
    """How many step checkpoints to keep in OUT_DIR/checkpoints/ (latest.pt and best.pt always stay)."""
    seed: int = 1337
    """Seed for weights, batches and dropout; a run is a function of its seed."""
    device: str = "auto"
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:N'."""
    dtype: str = "auto"
    """'auto' (bf16 autocast on CUDA, float32 on CPU), 'float32' or 'bfloat16'."""
    compile: bool = False
    """torch.compile the model."""
    parallel: str = "ddp"
    """Under torchrun: 'ddp' (a full copy of weights, gradients and AdamW state on every rank) or 'fsdp' (FSDP2 fully_shard per block and the root: each rank holds 1/world_size of them; sharded checkpoints)."""
    activation_checkpointing: str = "none"
    """'none', or 'full': recompute each block's activations in the backward instead of keeping them (less memory, about a third more compute)."""
    resume: str | None = None
    """'auto' to continue from OUT_DIR/latest.pt when present, or a checkpoint path."""
    init_from: str | None = None
    """Start from this checkpoint's weights and tokenizer (fine-tuning): step 0, fresh optimizer."""
    loss_on: str = "answer"
    """Q&A data: score 'answer' tokens only (with the closing <EOS>), or 'all' tokens."""
    sample_tokens: int = 100
    """Tokens of sample text printed at the end of training (0: none)."""
    progress: bool = True
    """Show a progress bar on stderr."""

    def __post_init__(self):
        for name in (
            "batch_size",
            "max_iters",
            "grad_accumulation_steps",
            "eval_interval",
            "eval_iters",
            "checkpoint_interval",
            "keep_checkpoints",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise TinyLLMError(f"--{name} must be a positive integer, got {v!r}")
        if self.warmup_iters < 0:
            raise TinyLLMError(f"--warmup_iters must be >= 0, got {self.warmup_iters}")
        for name in ("weight_decay", "grad_clip"):  # -1 used to mean 'off' for grad_clip, silently
            v = getattr(self, name)
            if not 0 <= v < float("inf"):
                raise TinyLLMError(f"--{name} must be a finite number >= 0 (0 = off), got {v}")
        if not 0 < self.max_lr < float("inf"):
            raise TinyLLMError(f"--max_lr must be positive and finite, got {self.max_lr}")
        if self.min_lr is None:
            self.min_lr = self.max_lr / 10
        if not 0 <= self.min_lr <= self.max_lr:
            raise TinyLLMError(f"--min_lr must be in [0, max_lr={self.max_lr}], got {self.min_lr}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise TinyLLMError(f"--dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        if self.loss_on not in ("answer", "all"):
            raise TinyLLMError(f"--loss_on must be 'answer' or 'all', got {self.loss_on!r}")
        if self.parallel not in ("ddp", "fsdp"):
            raise TinyLLMError(f"--parallel must be 'ddp' or 'fsdp', got {self.parallel!r}")
        if self.activation_checkpointing not in ("none", "full"):
            raise TinyLLMError(
                f"--activation_checkpointing must be 'none' or 'full', got {self.activation_checkpointing!r}"
            )
        if self.bad_records not in ("fail", "skip"):
            raise TinyLLMError(f"--bad_records must be 'fail' or 'skip', got {self.bad_records!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
