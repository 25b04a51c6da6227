"""The training loop (single process or torchrun DDP): `Trainer(resolve_run(...)).run()`.

Each part has its own module: where the run starts (resume.py), its data (datasets.py), one
step (step.py) and the batches it reads (batches.py: a run is a function of its seed, so a
resumed run replays the batches of an uninterrupted one), the LR schedule (schedule.py), loss
estimates (evaluate.py), metrics (metrics.py), the checkpoint schema (checkpoint.py), DDP
(distributed.py), signals (signals.py: SIGTERM / SIGINT finish the step, save, exit 0). A loss
that turns NaN or inf stops the run before the optimizer step, leaving the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..io import owned_dir
from ..model import ModelConfig, TinyLLM
from . import distributed as dist_utils
from . import parallel, resume, sharded
from .checkpoint import clean_stale_temp, load_weights
from .checkpointer import Checkpointer
from .datasets import Datasets, build_datasets
from .evaluate import estimate_loss_bpb
from .metrics import MetricsLog, Throughput, model_summary, progress_bar
from .mfu import mfu, peak_flops
from .precision import autocast_setup
from .run_config import RunConfig
from .signals import StopRequest
from .step import TrainStep, check_finite, set_lr


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    train_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float = float("inf")
    val_unigram_entropy: float | None = None
    tokens_per_sec: float | None = None
    stopped_early: str | None = None
    metrics: list = field(default_factory=list)


@dataclass
class Setup:
    """Everything the loop works on, as setup() built it."""

    model: TinyLLM  # the weights (what checkpoints hold)
    forward: object  # what evaluation calls: the model, compiled with --compile
    optimizer: torch.optim.Optimizer
    data: Datasets
    model_config: ModelConfig
    start: resume.StartPoint
    first_step: int
    best_val_loss: float
    train_step: TrainStep


class Trainer:
    def __init__(self, run: RunConfig):
        self.run_config, self.cfg = run, run.train
        self.out = Path(self.cfg.out_dir)
        self.sharded = self.cfg.parallel == "fsdp"  # FSDP: weights sharded over the ranks, sharded checkpoints
        self.dist, self.device = dist_utils.setup(self.cfg.device, need_group=self.sharded)
        self.main = self.dist.is_main
        self.amp_dtype, self.autocast = autocast_setup(self.cfg.dtype, self.device)

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, file=sys.stderr, flush=True)

    def run(self) -> TrainResult:
        clean = False
        try:
            result = self._setup_and_train()
            clean = True
            return result
        except BaseException as e:
            traceback.clear_frames(e.__traceback__)  # the frames' locals hold the model: see below
            raise
        finally:
            # the model, optimizer and compiled code lived in _setup_and_train's frame and are gone
            # (collected here: FSDP's hooks make cycles), so that under DDP nothing but c10d holds the
            # process group and destroying it stops its threads (under FSDP torch's DTensor caches
            # still hold it: distributed.exit_past_finalization says what then)
            if self.dist.enabled or self.dist.single_process_group:
                gc.collect()
            dist_utils.teardown(self.dist, clean)

    def _setup_and_train(self) -> TrainResult:
        # rank 0 owns --out_dir (checked, created, locked); a signal during setup stops at once,
        # one during training finishes the step and saves
        with owned_dir(self.out, "--out_dir", self.log) if self.main else contextlib.nullcontext():
            s = self.setup()
            with StopRequest(self.log) as stop:
                return self.train(s, stop)

    # ---- setup -----------------------------------------------------------------------------
    def setup(self) -> Setup:
        run, cfg = self.run_config, self.cfg
        if self.main:
            for f in clean_stale_temp(self.out):
                self.log(f"removed {f}, left by an interrupted checkpoint write")
        start = resume.find_start(run, self.out, self.dist, self.log)
        tok = None
        if start.source is not None:
            from ..tokenizer import Tokenizer

            tok = Tokenizer.from_str(start.source.tokenizer)
        shape = resume.model_shape(run, start)
        data = build_datasets(run, shape.context_length, self.out, self.dist, tok, start.describe(), self.log)
        model_cfg = resume.match_vocab(shape, data.tokenizer.vocab_size, run, start, self.log)
        raw, opt, model, fwd = self.build_model(model_cfg, start)
        first_step, best_val = resume.restore_progress(start, run, self.dist, self.log)
        self.log(model_summary(raw, self.device, self.dist, self.amp_dtype, cfg))
        self.log(f"data: {data.train.num_tokens:,} train tokens, {data.val.num_tokens:,} val tokens")
        step = TrainStep(model, raw, data.train, cfg, model_cfg.context_length, self.dist, self.device, self.autocast)
        return Setup(raw, fwd, opt, data, model_cfg, start, first_step, best_val, step)

    def build_model(self, model_cfg: ModelConfig, start: resume.StartPoint):
        """-> (model, optimizer, module to call for training, module for evaluation)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        raw = TinyLLM(model_cfg, device=self.device)
        if start.source is not None and not start.sharded:
            load_weights(raw, start.source.model, str(start.path))
        if cfg.activation_checkpointing == "full":
            parallel.apply_activation_checkpointing(raw)
        if self.sharded:
            return parallel.build_fsdp(raw, model_cfg, start, cfg, self.device)
        opt = raw.configure_optimizer(cfg.max_lr, cfg.weight_decay)
        if start.sharded:  # a sharded (FSDP) checkpoint: DCP reads the full tensors into this copy
            sharded.load(start.path, raw, opt)
        elif start.resumed is not None:
            opt.load_state_dict(start.resumed.optimizer)
        # compile the model, then wrap it in DDP (DDP's hooks stay outside the graph, so no_sync behaves
        # as in eager mode); evaluation calls the compiled module directly, without DDP
        fwd = torch.compile(raw) if self.cfg.compile else raw
        model = fwd
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(fwd, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return raw, opt, model, fwd

    # ---- the loop --------------------------------------------------------------------------
    def train(self, s: Setup, stop: StopRequest) -> TrainResult:
        cfg, self.stop = self.cfg, stop
        metrics = MetricsLog(self.out / "metrics.jsonl", self.main, s.first_step if s.start.resumed else None)
        meter = Throughput(s.train_step.tokens_per_step, self.device)
        result = TrainResult(self.out, s.first_step, best_val_loss=s.best_val_loss)
        self.checkpoints = Checkpointer(self.run_config, self.out, self.dist, s.first_step if s.start.resumed else None)
        bar = progress_bar(cfg.max_iters, s.first_step, self.main and cfg.progress)
        step = s.first_step
        if step == 0:
            self.evaluate(s, 0, None, set_lr(s.optimizer, 0, cfg), None, metrics, result, bar)
        while step < cfg.max_iters:
            lr = set_lr(s.optimizer, step, cfg)
            loss, grad_norm, any_rank_stopped = s.train_step(step, stop.requested)
            check_finite(loss, grad_norm, step, self.checkpoints.last_good, bar)
            s.optimizer.step()
            if step == s.first_step:  # gradients and AdamW state exist now: how much each rank holds
                self.log(parallel.bytes_line(s.model, s.optimizer, self.dist, cfg.parallel))
            s.optimizer.zero_grad(set_to_none=True)
            step += 1
            result.step = step
            evaluating = step % cfg.eval_interval == 0 or step == cfg.max_iters
            if meter.step_done(force=evaluating):
                self.show_progress(bar, s, loss, lr, meter.tokens_per_sec)
            bar.update(1)
            result.tokens_per_sec = meter.tokens_per_sec
            if evaluating:
                self.evaluate(s, step, loss, lr, meter.tokens_per_sec, metrics, result, bar)
            saving = step % cfg.checkpoint_interval == 0 or step == cfg.max_iters
            # under DDP every rank acts on the reduced flag, so all stop at the same step; a single
            # process also sees a signal that came during this step's evaluation
            stopping = any_rank_stopped if self.dist.enabled else stop.requested
            if saving or stopping:
                self.checkpoints.save_latest(s, step, result.best_val_loss)
            if saving or evaluating:
                meter.restart()  # evaluation and checkpoint time is not training throughput
            if stopping:
                result.stopped_early = (
                    f"stopped by {stop.signal_name or 'a signal'} at step {step}; "
                    f"checkpoint saved to {self.checkpoints.last_good()}"
                )
                bar.close()
                self.log(result.stopped_early)
                break
        bar.close()
        return self.finish(s, result)

    # ---- what the loop calls ---------------------------------------------------------------
    def show_progress(self, bar, s: Setup, loss: float, lr: float, tps: float) -> None:
        post = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tps:,.0f}"}
        if self.mfu(s, tps) is not None:
            post["mfu"] = f"{self.mfu(s, tps):.1%}"
        bar.set_postfix(post, refresh=False)

    def mfu(self, s: Setup, tps: float | None) -> float | None:
        """Model FLOPs utilisation (mfu.py) on CUDA devices with a known peak, else None."""
        peak = peak_flops(self.device, self.amp_dtype)
        return mfu(s.model.flops_per_token(), tps, peak, self.dist.world_size) if peak and tps else None

    def evaluate(self, s: Setup, step: int, batch_loss, lr: float, tps, metrics, result, bar) -> None:
        """Rank 0: train and val loss estimates -> metrics.jsonl, and best.pt when val improved. Under
        FSDP every rank evaluates with it (each forward gathers the shards) and writes best.pt with it."""
        if self.main or self.sharded:
            got = self.stop.abandonable(lambda: self.losses(s), "the evaluation", not self.dist.enabled, s.model.train)
            if got is None:  # a signal came: no row, no best.pt; the loop saves latest.pt and stops
                return
            tl, vl, vbpb = got
            improved = vl < result.best_val_loss
            result.train_loss, result.val_loss = tl, vl
        if self.main:
            row = dict(step=step, train_loss=tl, val_loss=vl, val_bpb=vbpb, lr=lr, tokens_per_sec=tps)
            row.update(batch_train_loss=batch_loss, tokens=step * s.train_step.tokens_per_step)
            if self.mfu(s, tps) is not None:
                row["mfu"] = self.mfu(s, tps)
            metrics.append(row)
            result.metrics.append(row)
            bar.write(f"step {step}: train loss {tl:.4f}, val loss {vl:.4f}", file=sys.stderr)
        if self.sharded:  # rank 0's verdict for all: gathering the weights for best.pt is collective
            improved = dist_utils.broadcast_object(improved, self.dist)
        if (self.main or self.sharded) and improved:
            result.best_val_loss = vl
            self.checkpoints.save_best(s, step, vl)
        dist_utils.barrier(self.dist)

    def losses(self, s: Setup) -> tuple[float, float, float]:
        """(train loss, val loss, val bits per byte) estimates, on the same batches at every evaluation."""
        cfg, tok = self.cfg, s.data.tokenizer
        (tl, _), (vl, vbpb) = (
            estimate_loss_bpb(
                s.forward, ds, split, cfg.eval_iters, cfg.batch_size, cfg.seed, self.device, self.autocast, t
            )
            for split, ds, t in ((0, s.data.train, None), (1, s.data.val, tok))
        )
        return tl, vl, vbpb

    def finish(self, s: Setup, result: TrainResult) -> TrainResult:
        """Rank 0: loss.png, the unigram-entropy yardstick, and what the CLI's sample needs (under FSDP,
        an unsharded copy of the weights on rank 0, gathered by every rank)."""
        unmeasured = result.val_loss is None and not result.stopped_early  # resumed a finished run: measure once
        if (self.main or self.sharded) and unmeasured:
            result.train_loss, result.val_loss, _ = self.losses(s)
        model = parallel.unsharded_copy(s.model, s.model_config, self.device, self.main) if self.sharded else s.model
        if self.main:
            from .plot import plot_metrics

            plot_metrics(self.out / "metrics.jsonl", self.out / "loss.png")
            if not s.data.is_qa:
                from ..data.tokens import unigram_entropy

                result.val_unigram_entropy = unigram_entropy(s.data.val.arrays, s.data.tokenizer.vocab_size)
            self.tokenizer, self.model, self.is_qa = s.data.tokenizer, model, s.data.is_qa
            self.sample_prompt = s.data.sample_prompt
        return result
