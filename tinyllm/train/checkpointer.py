"""Writing this run's checkpoints: OUT/latest.pt after every --checkpoint_interval steps (with a
copy in OUT/checkpoints/ of the last --keep_checkpoints), OUT/best.pt when the val loss improves.

Rank 0 writes; latest.pt carries every rank's RNG state (gathered first). Each file goes through a
temp file and a rename, so a write cut short (SIGKILL, a full disk) never replaces a good one; a
write that fails stops the run naming the file, the OS reason and the last good checkpoint. Under
--parallel fsdp every rank writes its shard instead: OUT/latest.dcp (sharded.py), the same TrainState.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TinyLLMError
from . import distributed as dist_utils
from . import sharded
from .checkpoint import DataPosition, TrainState, keep_history, rng_state


class Checkpointer:
    def __init__(self, run, out: Path, dist, last_saved: int | None):
        self.run, self.out, self.dist = run, out, dist
        self.last_saved = last_saved  # the step of the newest latest.pt this run can fall back on
        self.sharded = run.train.parallel == "fsdp"

    def state(self, s, step: int, best_val_loss: float, rngs: list, tensors: bool = True) -> TrainState:
        """The checkpoint of the run set up as `s` (trainer.Setup) after `step` steps (without the
        model and optimizer when not `tensors`: a sharded save writes those itself)."""
        cfg = self.run.train
        position = DataPosition(
            step, cfg.seed, s.train_step.parts, self.dist.world_size, cfg.grad_accumulation_steps, cfg.batch_size
        )
        return TrainState(
            model=s.model.state_dict() if tensors else {},
            model_config=s.model_config.to_dict(),
            tokenizer=s.data.tokenizer.to_str(),
            optimizer=s.optimizer.state_dict() if tensors else None,
            model_request=self.run.model.to_dict(),
            train_config=cfg.to_dict(),
            step=step,
            best_val_loss=best_val_loss,
            data_position=position,
            rng_per_rank=rngs,
            is_qa=s.data.is_qa,
        )

    def save_latest(self, s, step: int, best_val_loss: float) -> None:
        """OUT/latest.pt with every rank's RNGs, and its copy in checkpoints/ (all ranks call this)."""
        rngs = dist_utils.gather_objects(rng_state(), self.dist)
        if self.sharded:  # every rank writes its shard: OUT/latest.dcp (sharded.py)
            meta = self.state(s, step, best_val_loss, rngs, tensors=False).meta()
            try:
                sharded.save(self.out, meta, s.model, s.optimizer, self.dist, self.run.train.keep_checkpoints)
            except OSError as e:
                raise TinyLLMError(
                    f"cannot write the sharded checkpoint of step {step} in {self.out / 'checkpoints'} "
                    f"({e.strerror or e}); stopped. Last good checkpoint: {self.last_good()}"
                ) from None
            self.last_saved = step
            return
        if self.dist.is_main:
            self._write(self.state(s, step, best_val_loss, rngs), self.out / "latest.pt", step)
            keep_history(self.out / "latest.pt", self.out / "checkpoints", step, self.run.train.keep_checkpoints)
        self.last_saved = step
        dist_utils.barrier(self.dist)

    def save_best(self, s, step: int, val_loss: float) -> None:
        """OUT/best.pt (rank 0 only: it holds rank 0's RNG, enough to use or fine-tune from). Under
        FSDP every rank calls this (gathering the weights is collective) and best.pt holds the full
        weights without the optimizer: a file to use, not to resume from."""
        if self.sharded:
            weights = sharded.full_model_state(s.model)
            if self.dist.is_main:
                state = self.state(s, step, val_loss, [rng_state()], tensors=False)
                state.model = weights
                self._write(state, self.out / "best.pt", step)
            return
        self._write(self.state(s, step, val_loss, [rng_state()]), self.out / "best.pt", step)

    def last_good(self) -> str:
        if self.last_saved is None:
            return "none (no checkpoint written yet)"
        latest = self.out / (sharded.LATEST if self.sharded else "latest.pt")
        return f"{latest} (after step {self.last_saved})"

    def _write(self, state: TrainState, path: Path, step: int) -> None:
        try:
            state.save(path)
        except OSError as e:
            raise TinyLLMError(
                f"cannot write {path} at step {step} ({e.strerror or e}); stopped. Last good checkpoint: "
                f"{self.last_good()}"
            ) from None
