"""Where a run starts: from scratch, resumed from a checkpoint (--resume), or from another
run's weights (--init_from, fine-tuning: step 0, fresh optimizer).

A checkpoint is a file (latest.pt) or, under FSDP, a sharded folder (latest.dcp, sharded.py); either
resumes under either --parallel, and a sharded one on any number of ranks. A resumed run continues exactly: the model's shape, the optimizer, the step, the best val
loss, every rank's RNG and the data position come from the checkpoint (TrainState). The
checkpoint must hold the model asked for (the fields the user set); the attention backend
and dropout may change, they do not change the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyLLMError
from ..model.config import ModelConfig
from . import distributed as dist_utils
from . import sharded
from .checkpoint import TrainState, config_mismatch, set_rng_state


@dataclass
class StartPoint:
    resumed: TrainState | None = None
    """The checkpoint being resumed, or None."""
    path: Path | None = None
    """Where `resumed` (or, fine-tuning, `init`) was read from."""
    init: TrainState | None = None
    """--init_from's checkpoint when not resuming, or None."""
    sharded: bool = False
    """`resumed` is a sharded folder's meta (sharded.py): its tensors are read with DCP in build_model."""

    @property
    def source(self) -> TrainState | None:
        """The checkpoint whose model shape, weights and tokenizer this run starts from."""
        return self.resumed or self.init

    def describe(self) -> str:
        return "the checkpoint being resumed" if self.resumed else f"--init_from {self.path}"


def find_start(run, out: Path, dist, log) -> StartPoint:
    """Read the checkpoint to resume (every rank must see the same one) or to fine-tune from."""
    cfg = run.train
    if cfg.resume:
        path = newest_latest(out) if cfg.resume == "auto" else Path(cfg.resume)
        if sharded.is_sharded(path):
            state = sharded.read_meta(path)
        else:
            state, path = load_intact(path, out, cfg.resume == "auto", log) if path.exists() else (None, path)
        # every rank must resume from the same step: with --out_dir on a disk only some nodes see, they would not
        seen = dist_utils.gather_objects(state.step if state else None, dist)
        if len(set(seen)) > 1:
            raise TinyLLMError(
                f"ranks disagree about {path} (step by rank: {seen}): put --out_dir on a filesystem every node shares"
            )
        if state is not None:
            check_resumed_model(state, path, run)
            if not sharded.is_sharded(path) and (state.optimizer is None or not state.rng_per_rank):
                raise TinyLLMError(
                    f"{path}: holds weights only (no optimizer or RNG state: an imported or "
                    f"consolidated model, or an FSDP run's best.pt), so it cannot be resumed; "
                    f"fine-tune from it with --init_from {path}"
                )
            return StartPoint(state, path, sharded=sharded.is_sharded(path))
        if cfg.resume != "auto":
            raise TinyLLMError(f"{path}: no such checkpoint")
        log(
            f"no checkpoint at {path}: starting "
            + (f"from --init_from {cfg.init_from}" if cfg.init_from else "from scratch")
        )
    if cfg.init_from:
        init = TrainState.load(cfg.init_from)
        check_init(init, run, out)
        return StartPoint(None, Path(cfg.init_from), init)
    return StartPoint()


def newest_latest(out: Path) -> Path:
    """OUT/latest.pt (single file: DDP, one process) or OUT/latest.dcp (sharded: FSDP), whichever is of
    the later step: a run may switch --parallel between launches, and either reads the other's."""
    file, folder = out / "latest.pt", out / sharded.LATEST
    if not sharded.is_sharded(folder):
        return file
    if not file.exists():
        return folder.resolve()
    try:
        file_step = TrainState.load(file).step
    except TinyLLMError:
        return folder.resolve()
    return folder.resolve() if sharded.read_meta(folder).step >= file_step else file


def load_intact(path: Path, out: Path, fall_back: bool, log) -> tuple[TrainState, Path]:
    """Read the checkpoint to resume. latest.pt is a hard link to the newest step checkpoint, so a
    damaged one takes both with it: with --resume auto, fall back to the newest intact checkpoint in
    OUT/checkpoints/ and say so; with an explicit path, say which older one is intact."""
    try:
        return TrainState.load(path), path
    except TinyLLMError as e:
        damage = str(e)
    history = path.parent if path.parent.name == "checkpoints" else path.parent / "checkpoints"  # this run's
    for older in sorted(history.glob("step_*.pt"), reverse=True):
        try:
            state = TrainState.load(older)
        except TinyLLMError:
            continue
        if not fall_back:
            raise TinyLLMError(f"{damage}; {older} (step {state.step}) is intact: pass --resume {older}")
        log(f"warning: {damage}; resuming from {older} (step {state.step}), the newest intact checkpoint")
        return state, older
    raise TinyLLMError(f"{damage}; no intact checkpoint in {history} either")


def check_resumed_model(state: TrainState, path: Path, run) -> None:
    """Refuse a checkpoint whose model differs from the one asked for, naming the fields."""
    saved, fields = state.model_request, set(run.model_asked)
    if saved is None:  # written without the request: compare with the model it holds
        saved = state.model_config
        if "vocab_size" not in run.model_set:
            fields.discard("vocab_size")  # the corpus may have lowered it
    diff = config_mismatch(saved, run.model.to_dict(), fields)
    if diff:
        raise TinyLLMError(
            f"cannot resume from {path}: it holds a different model ({'; '.join(diff)}); use "
            f"another --out_dir or drop --resume"
        )


def check_init(init: TrainState, run, out: Path) -> None:
    """--init_from: never write over the checkpoint we start from; model flags must agree with it."""
    src = Path(run.train.init_from).resolve()
    if src.parent in (out.resolve(), (out / "checkpoints").resolve()):
        raise TinyLLMError(
            f"--init_from {run.train.init_from} is inside --out_dir {out}: fine-tuning would "
            "overwrite it; pass another --out_dir"
        )
    diff = config_mismatch(init.model_config, run.model.to_dict(), run.model_set)
    if diff:
        raise TinyLLMError(
            f"--init_from {run.train.init_from}: its model differs from the flags given "
            f"({'; '.join(diff)}); drop those flags, the shape comes from the checkpoint"
        )


def model_shape(run, start: StartPoint) -> ModelConfig:
    """The model this run trains: the checkpoint's shape (with this run's attention backend and
    dropout) when it starts from one, else the one asked for."""
    if start.source is None:
        return run.model
    return ModelConfig.from_dict(
        {**start.source.model_config, "attention": run.model.attention, "dropout": run.model.dropout}
    )


def match_vocab(model: ModelConfig, vocab_size: int, run, start: StartPoint, log) -> ModelConfig:
    """The model with the tokenizer's vocab_size: a corpus too small for the vocab asked for lowers
    it (with a note); a checkpoint's model or an explicit --vocab_size must match exactly."""
    V = model.vocab_size
    if vocab_size == V:
        return model
    if start.source is not None or (vocab_size > V and "vocab_size" in run.model_set):
        raise TinyLLMError(f"tokenizer has {vocab_size} tokens but the model's vocab_size is {V}")
    reason = "the tokenizer has" if vocab_size > V else "the corpus only supports"
    log(f"note: {reason} {vocab_size} tokens; using vocab_size {vocab_size}")
    return ModelConfig.from_dict({**model.to_dict(), "vocab_size": vocab_size})


def restore_progress(start: StartPoint, run, dist, log) -> tuple[int, float]:
    """Resuming: put back this rank's RNGs; -> (first step, best val loss so far)."""
    state = start.resumed
    if state is None:
        return 0, float("inf")
    ranks = state.rng_per_rank
    set_rng_state(ranks[dist.rank] if len(ranks) == dist.world_size else ranks[0])
    pos, cfg = state.data_position, run.train
    parts = cfg.grad_accumulation_steps * dist.world_size
    if pos.micro_batches_per_step != parts or pos.seed != cfg.seed:
        log(
            f"note: the checkpoint was written with {pos.micro_batches_per_step} micro-batches per step (world "
            f"size x grad_accumulation_steps) and seed {pos.seed}; now {parts} and {cfg.seed}: training "
            "continues, but not on the batches the first run would have seen"
        )
    changed = changed_settings(state.train_config or {}, run.train)
    if changed:
        log(
            f"note: resuming with settings that differ from the checkpoint's run: {', '.join(changed)} (checkpoint "
            f"-> now; the new values apply from here on, and the loss may jump)"
        )
    log(f"resuming from {start.path} at step {state.step}")
    return int(state.step), float(state.best_val_loss)


# settings whose change on resume alters the optimisation (the loss can jump), worth a note
OPTIMISATION = (
    "max_lr",
    "min_lr",
    "warmup_iters",
    "max_iters",
    "weight_decay",
    "grad_clip",
    "batch_size",
    "grad_accumulation_steps",
    "seed",
    "dtype",
    "loss_on",
)


def changed_settings(saved: dict, now) -> list[str]:
    return [
        f"{k} {saved[k]!r} -> {getattr(now, k)!r}" for k in OPTIMISATION if k in saved and saved[k] != getattr(now, k)
    ]
