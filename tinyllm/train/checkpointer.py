"""Writing this run's checkpoints: OUT/latest.pt after every --checkpoint_interval steps (with a
copy in OUT/checkpoints/ of the last --keep_checkpoints), OUT/best.pt when the val loss improves.

Rank 0 writes; latest.pt carries every rank's RNG state (gathered first). Each file goes through a
temp file and a rename, so a write cut short (SIGKILL, a full disk) never replaces a good one; a
write that fails stops the run naming the file, the OS reason and the last good checkpoint. This is
where a sharded (FSDP + torch.distributed.checkpoint) writer plugs in: same TrainState, other files.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TinyLLMError
from . import distributed as dist_utils
from .checkpoint import DataPosition, TrainState, keep_history, rng_state


class Checkpointer:
    def __init__(self, run, out: Path, dist, last_saved: int | None):
        self.run, self.out, self.dist = run, out, dist
        self.last_saved = last_saved  # the step of the newest latest.pt this run can fall back on

    def state(self, s, step: int, best_val_loss: float, rngs: list) -> TrainState:
        """The checkpoint of the run set up as `s` (trainer.Setup) after `step` steps."""
        cfg = self.run.train
        position = DataPosition(
            step, cfg.seed, s.train_step.parts, self.dist.world_size, cfg.grad_accumulation_steps, cfg.batch_size
        )
        return TrainState(
            model=s.model.state_dict(),
            model_config=s.model_config.to_dict(),
            tokenizer=s.data.tokenizer.to_str(),
            optimizer=s.optimizer.state_dict(),
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
        if self.dist.is_main:
            self._write(self.state(s, step, best_val_loss, rngs), self.out / "latest.pt", step)
            keep_history(self.out / "latest.pt", self.out / "checkpoints", step, self.run.train.keep_checkpoints)
        self.last_saved = step
        dist_utils.barrier(self.dist)

    def save_best(self, s, step: int, val_loss: float) -> None:
        """OUT/best.pt (rank 0 only: it holds rank 0's RNG, enough to use or fine-tune from)."""
        self._write(self.state(s, step, val_loss, [rng_state()]), self.out / "best.pt", step)

    def last_good(self) -> str:
        if self.last_saved is None:
            return "none (no checkpoint written yet)"
        return f"{self.out / 'latest.pt'} (after step {self.last_saved})"

    def _write(self, state: TrainState, path: Path, step: int) -> None:
        try:
            state.save(path)
        except OSError as e:
            raise TinyLLMError(
                f"cannot write {path} at step {step} ({e.strerror or e}); stopped. Last good checkpoint: "
                f"{self.last_good()}"
            ) from None
