"""The training loop: single process or torchrun DDP, exact resume, atomic checkpoints.

Determinism: global micro-batch g (= rank * accum + micro) of step s is drawn from its
own slice of the data by a generator seeded by (seed, s, g) (see sampler.py), and
dropout is reseeded the same way before each micro-step. So a run is a function of its
seed alone: a resumed run replays exactly the batches the uninterrupted run would have
seen, and 2 ranks x A micro-steps see the same samples as 1 rank x 2A micro-steps.

Faults: SIGTERM / SIGINT finish the step, write OUT_DIR/latest.pt and return normally
(exit 0, so torchrun's elastic restarts pick it up with --resume auto); a loss that
turns NaN or inf stops before the optimizer step, leaving the last good checkpoint;
checkpoints are written through a temp file and a rename.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import TinyLLMError
from ..io import atomic_open
from ..model import ModelConfig, TinyLLM
from . import distributed as dist_utils
from .checkpoint import (clean_stale_temp, config_mismatch, keep_history, read_checkpoint, rng_state,
                         save_checkpoint, set_rng_state)
from .config import TrainConfig
from .mfu import mfu, peak_flops
from .precision import autocast_setup
from .sampler import derive_seed, slice_batch
from .schedule import lr_at


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



class StopRequest:
    """SIGTERM / SIGINT: finish the current step, write a checkpoint, exit 0.

    A second signal of the same kind gets the default behaviour (a second Ctrl-C kills)."""

    def __init__(self, log=lambda msg: None):
        self.requested = False
        self.signal_name = None
        self._old = {}
        self._log = log

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
        self._log(f"\n{self.signal_name}: stopping after this step with a checkpoint (send it again to stop now)")

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, model_overrides: dict | None = None,
                 preset_explicit: bool = False):
        """model_cfg: the model asked for (preset + flags); model_overrides: the model fields set by flags.
        preset_explicit: --preset was given, so every preset field but vocab_size counts as asked for
        when a resumed checkpoint is compared with this run's model."""
        self.cfg = cfg
        self.model_cfg = model_cfg
        self.requested_model = model_cfg.to_dict()
        self.model_overrides = model_overrides or {}
        self.explicit_fields = set(self.model_overrides)
        if preset_explicit:
            self.explicit_fields |= set(self.requested_model) - {"vocab_size"}
        self.out = Path(cfg.out_dir)
        self.dist, self.device = dist_utils.setup(cfg.device)
        self.main = self.dist.is_main
        self.amp_dtype, self.autocast = autocast_setup(cfg.dtype, self.device)

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, file=sys.stderr, flush=True)

    # ---- setup -----------------------------------------------------------------------------
    def _resume_checkpoint(self) -> dict | None:
        r = self.cfg.resume
        if not r:
            return None
        path = self.out / "latest.pt" if r == "auto" else Path(r)
        ckpt = read_checkpoint(path) if path.exists() else None
        # every rank must resume from the same step: with --out_dir on a disk only some nodes see, they would not
        seen = dist_utils.gather_objects(ckpt["step"] if ckpt else None, self.dist)
        if len(set(seen)) > 1:
            raise TinyLLMError(f"ranks disagree about {path} (step by rank: {seen}): put --out_dir on a filesystem "
                               f"every node shares")
        if ckpt is None:
            if r == "auto":
                self.log(f"no checkpoint at {path}: starting from scratch")
                return None
            raise TinyLLMError(f"{path}: no such checkpoint")
        ckpt["_path"] = str(path)
        return ckpt

    def _check_resumed_model(self, ckpt: dict) -> None:
        """Refuse a checkpoint whose model differs from the one asked for, naming the fields."""
        saved = ckpt.get("model_request")
        fields = set(self.explicit_fields)
        if saved is None:  # an older checkpoint: compare with the model it holds
            saved = ckpt["model_config"]
            if "vocab_size" not in self.model_overrides:
                fields.discard("vocab_size")  # the corpus may have lowered it
        diff = config_mismatch(saved, self.requested_model, fields)
        if diff:
            raise TinyLLMError(f"cannot resume from {ckpt['_path']}: it holds a different model "
                               f"({'; '.join(diff)}); use another --out_dir or drop --resume")

    def _check_init(self, init: dict) -> None:
        """--init_from: never write over the checkpoint we start from; model flags must agree with it."""
        src = Path(self.cfg.init_from).resolve()
        if src.parent == self.out.resolve() or src.parent == (self.out / "checkpoints").resolve():
            raise TinyLLMError(f"--init_from {self.cfg.init_from} is inside --out_dir {self.out}: fine-tuning would "
                               "overwrite it; pass another --out_dir")
        diff = config_mismatch(init["model_config"], self.requested_model, set(self.model_overrides))
        if diff:
            raise TinyLLMError(f"--init_from {self.cfg.init_from}: its model differs from the flags given "
                               f"({'; '.join(diff)}); drop those flags, the shape comes from the checkpoint")

    def _setup_data(self, ckpt: dict | None, init: dict | None):
        from ..data.pipeline import build_token_files, load_corpus, split_documents, train_tokenizer
        from ..prepare import is_prepared_dir, load_prepared
        from ..tokenizer import Tokenizer

        cfg, out = self.cfg, self.out
        if cfg.data and is_prepared_dir(cfg.data):  # shards from `tinyllm prepare`: memmapped, never loaded
            tok_src = ckpt or init
            train_ds, val_ds, meta, tok = load_prepared(cfg.data, self.model_cfg.context_length, cfg.tokenizer)
            if tok_src:
                from ..data.tokens import tokenizer_hash
                tok = Tokenizer.from_str(tok_src["tokenizer"])
                if meta.get("tokenizer_hash") and tokenizer_hash(tok) != meta["tokenizer_hash"]:
                    src = "the checkpoint being resumed" if ckpt else f"--init_from {cfg.init_from}"
                    raise TinyLLMError(f"{cfg.data} was encoded with another tokenizer than {src}'s; run "
                                       "`tinyllm prepare` again with that tokenizer")
            if self.main:
                tok.save(out / "tokenizer.txt")
            return tok, train_ds, val_ds, False, meta.get("sample_prompt", "")

        corpus = load_corpus(cfg.data)
        tok_file, tok_meta = out / "tokenizer.txt", out / "tokenizer.json"
        if self.main:
            trained_for = None  # the key of a tokenizer trained here, recorded once it is saved
            if ckpt or init:
                tok = Tokenizer.from_str((ckpt or init)["tokenizer"])
            elif cfg.tokenizer:
                tok = Tokenizer.load(cfg.tokenizer)
            else:
                key = {"corpus_hash": corpus.fingerprint(), "vocab_size": self.model_cfg.vocab_size}
                reuse = tok_file.exists() and tok_meta.exists() and json.loads(tok_meta.read_text()) == key
                if reuse:
                    tok = Tokenizer.load(tok_file)
                else:
                    t0 = time.perf_counter()
                    tok = train_tokenizer(corpus, self.model_cfg.vocab_size, show_progress=cfg.progress)
                    self.log(f"trained a {tok.vocab_size}-token BPE tokenizer in {time.perf_counter() - t0:.1f}s")
                    trained_for = key
            tok.save(tok_file)
            if trained_for is not None:  # after the file it describes: a crash in between retrains, never misreuses
                with atomic_open(tok_meta) as f:
                    json.dump(trained_for, f)
        # through the process group, not the file: other nodes may not share out_dir's disk
        tok_text = dist_utils.broadcast_object(tok.to_str() if self.main else None, self.dist)
        if not self.main:
            tok = Tokenizer.from_str(tok_text)

        if corpus.is_qa:
            from ..data.packed import PackedQADataset
            from ..data.qa import load_qa
            pairs = load_qa(cfg.data)
            train_pairs, val_pairs = split_documents(pairs, keep_all=True)
            T = self.model_cfg.context_length
            train_ds = PackedQADataset(train_pairs, tok, T, cfg.loss_on, f"{cfg.data} (train)")
            val_ds = PackedQADataset(val_pairs, tok, T, cfg.loss_on, f"{cfg.data} (val)")
            return tok, train_ds, val_ds, True, ""
        # rank 0 tokenizes, then the first rank of each other node (it finds the files already there when
        # out_dir is a shared disk), then everyone memmaps them
        T = self.model_cfg.context_length
        built = None  # a rank that built (or checked) the files keeps its datasets: no second corpus hash
        if self.main:
            built = build_token_files(corpus, tok, out / "data", T)
        dist_utils.barrier(self.dist)
        if self.dist.local_rank == 0 and not self.main:
            built = build_token_files(corpus, tok, out / "data", T)
        dist_utils.barrier(self.dist)
        train_ds, val_ds, _ = built or build_token_files(corpus, tok, out / "data", T)
        _, val_docs = split_documents(corpus.documents)
        prompt = " ".join(val_docs[0].split()[:4]) if val_docs else ""
        return tok, train_ds, val_ds, False, prompt

    def _match_vocab(self, tok, ckpt, init) -> None:
        V = self.model_cfg.vocab_size
        if tok.vocab_size == V:
            return
        if ckpt or init or (tok.vocab_size > V and "vocab_size" in self.model_overrides):
            raise TinyLLMError(f"tokenizer has {tok.vocab_size} tokens but the model's vocab_size is {V}")
        if tok.vocab_size > V:
            self.log(f"note: the tokenizer has {tok.vocab_size} tokens; using vocab_size {tok.vocab_size}")
        else:
            self.log(f"note: the corpus only supports {tok.vocab_size} tokens; using vocab_size {tok.vocab_size}")
        self.model_cfg = ModelConfig.from_dict({**self.model_cfg.to_dict(), "vocab_size": tok.vocab_size})

    def _build_model(self, ckpt, init):
        """-> (raw model, optimizer, module to call for training, module for evaluation)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        raw = TinyLLM(self.model_cfg, device=self.device)
        if init:
            raw.load_state_dict(init["model"])
        if ckpt:
            try:
                raw.load_state_dict(ckpt["model"])
            except RuntimeError as e:
                raise TinyLLMError(f"{ckpt['_path']}: weights do not match its model config "
                                   f"({str(e).splitlines()[0]})") from None
        opt = raw.configure_optimizer(cfg.max_lr, cfg.weight_decay)
        if ckpt:
            opt.load_state_dict(ckpt["optimizer"])
        # compile the model, then wrap it in DDP (DDP's hooks stay outside the graph, so no_sync behaves
        # as in eager mode); evaluation calls the compiled module directly, without DDP
        fwd = torch.compile(raw) if cfg.compile else raw
        model = fwd
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            model = DDP(fwd, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return raw, opt, model, fwd

    # ---- one step ----------------------------------------------------------------------------
    def _micro_batch(self, ds, step: int, g: int, parts: int):
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, step, g))
        x, y = slice_batch(ds, gen, self.cfg.batch_size, g, parts)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    @torch.no_grad()
    def estimate_loss(self, model, ds, split_id: int) -> float:
        """Mean loss over eval_iters batches, the same batches at every evaluation."""
        model.eval()
        losses = []
        for i in range(self.cfg.eval_iters):
            gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, 0x5EED, split_id, i))
            x, y = ds.sample(gen, self.cfg.batch_size)
            with self.autocast():
                _, loss = model(x.to(self.device), y.to(self.device), return_logits=False)
            losses.append(loss.item())
        model.train()
        return float(np.mean(losses))

    # ---- the run -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        clean = False
        try:
            with StopRequest(self.log) as stop:
                result = self._run(stop)
            clean = True
            return result
        finally:
            dist_utils.teardown(self.dist, clean)

    def _run(self, stop: StopRequest) -> TrainResult:
        cfg = self.cfg
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            for f in clean_stale_temp(self.out):
                self.log(f"removed {f}, left by an interrupted checkpoint write")
        ckpt = self._resume_checkpoint()
        init = read_checkpoint(cfg.init_from) if cfg.init_from and not ckpt else None
        if init:
            self._check_init(init)

        # the model's shape comes from the checkpoint when resuming or fine-tuning
        if ckpt or init:
            if ckpt:
                self._check_resumed_model(ckpt)
            saved = dict((ckpt or init)["model_config"])
            saved.update(attention=self.model_cfg.attention, dropout=self.model_cfg.dropout)
            self.model_cfg = ModelConfig.from_dict(saved)

        tok, train_ds, val_ds, is_qa, sample_prompt = self._setup_data(ckpt, init)
        self._match_vocab(tok, ckpt, init)
        raw, opt, model, fwd = self._build_model(ckpt, init)

        accum, world = cfg.grad_accumulation_steps, self.dist.world_size
        parts = accum * world  # micro-batches per step, each from its own slice of the data
        start_step, best_val = 0, float("inf")
        if ckpt:
            start_step = int(ckpt["step"])
            best_val = float(ckpt.get("best_val_loss", float("inf")))
            ranks = ckpt.get("rng_per_rank")
            set_rng_state(ranks[self.dist.rank] if ranks and len(ranks) == world else ckpt["rng"])
            pos = ckpt.get("data_position") or {}
            if pos.get("micro_batches_per_step", parts) != parts or pos.get("seed", cfg.seed) != cfg.seed:
                self.log(f"note: the checkpoint was written with {pos.get('micro_batches_per_step')} micro-batches "
                         f"per step (world size x grad_accumulation_steps) and seed {pos.get('seed')}; now {parts} "
                         f"and {cfg.seed}: training continues, but not on the batches the first run would have seen")
            self.log(f"resuming from {ckpt['_path']} at step {start_step}")

        n_params = raw.num_params()
        self.log(f"model: {n_params / 1e6:.2f}M parameters ({self.model_cfg.d_model}d, {self.model_cfg.n_layers} "
                 f"layers, {self.model_cfg.n_heads} heads, {raw.backend} attention) on {self.device}"
                 + (f" x {world} ranks" if self.dist.enabled else "")
                 + (", bf16 autocast" if self.amp_dtype == torch.bfloat16 else "")
                 + (", compiled" if cfg.compile else ""))
        self.log(f"data: {train_ds.num_tokens:,} train tokens, {val_ds.num_tokens:,} val tokens")

        tokens_per_step = cfg.batch_size * parts * self.model_cfg.context_length
        peak = peak_flops(self.device, self.amp_dtype)
        flops_per_token = raw.flops_per_token()
        metrics_path = self.out / "metrics.jsonl"
        result = TrainResult(self.out, start_step, best_val_loss=best_val)
        if self.main and metrics_path.exists():
            if ckpt:  # drop rows a killed run logged after its last checkpoint: they are about to be redone
                rows = [r for r in metrics_path.read_text().splitlines()
                        if r.strip() and json.loads(r)["step"] <= start_step]
                with atomic_open(metrics_path) as f:
                    f.writelines(r + "\n" for r in rows)
            else:
                metrics_path.unlink()  # a fresh run starts a fresh log

        def checkpoint(path: Path, step: int, lr: float, rngs: list):
            save_checkpoint(path, model=raw.state_dict(), optimizer=opt.state_dict(),
                            model_config=self.model_cfg.to_dict(), model_request=self.requested_model,
                            train_config=cfg.to_dict(), step=step, best_val_loss=result.best_val_loss,
                            tokenizer=tok.to_str(), rng=rngs[0], rng_per_rank=rngs, is_qa=is_qa,
                            n_params=n_params,
                            lr_schedule={"next_step": step, "lr": lr, "max_lr": cfg.max_lr, "min_lr": cfg.min_lr,
                                         "warmup_iters": cfg.warmup_iters, "max_iters": cfg.max_iters},
                            data_position={"next_step": step, "seed": cfg.seed, "micro_batches_per_step": parts,
                                           "world_size": world, "grad_accumulation_steps": accum,
                                           "batch_size": cfg.batch_size})

        last_saved = start_step if ckpt else None

        def save_latest(step: int, lr: float):
            nonlocal last_saved
            rngs = dist_utils.gather_objects(rng_state(), self.dist)  # every rank's RNGs, written by rank 0
            if self.main:
                checkpoint(self.out / "latest.pt", step, lr, rngs)
                keep_history(self.out / "latest.pt", self.out / "checkpoints", step, cfg.keep_checkpoints)
            last_saved = step
            dist_utils.barrier(self.dist)

        def evaluate(step: int, train_loss: float | None, lr: float, tps: float | None):
            if self.main:
                tl = self.estimate_loss(fwd, train_ds, 0)
                vl = self.estimate_loss(fwd, val_ds, 1)
                row = {"step": step, "train_loss": tl, "val_loss": vl, "lr": lr, "tokens_per_sec": tps,
                       "batch_train_loss": train_loss, "tokens": step * tokens_per_step}
                if peak and tps:
                    row["mfu"] = mfu(flops_per_token, tps, peak, world)
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                result.metrics.append(row)
                result.train_loss, result.val_loss = tl, vl
                if vl < result.best_val_loss:
                    result.best_val_loss = vl
                    checkpoint(self.out / "best.pt", step, lr, [rng_state()])
                bar.write(f"step {step}: train loss {tl:.4f}, val loss {vl:.4f}", file=sys.stderr)
            dist_utils.barrier(self.dist)

        bar = tqdm(total=cfg.max_iters, initial=start_step, desc="training", unit="step", file=sys.stderr,
                   disable=not (self.main and cfg.progress), dynamic_ncols=True)
        t_last, steps_since, tps = time.perf_counter(), 0, None
        lr = lr_at(start_step, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
        if start_step == 0:  # (max_iters >= 1: TrainConfig checks it)
            evaluate(0, None, lr, None)
        step = start_step
        # [loss summed over the micro-steps, stop flag]: both ride one all-reduce per step under DDP
        stats = torch.zeros(2, device=self.device)
        no_grad_norm = torch.zeros((), device=self.device)  # without clipping
        while step < cfg.max_iters:
            lr = lr_at(step, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
            for group in opt.param_groups:
                group["lr"] = lr
            stats.zero_()
            loss_sum = stats[0]
            for micro in range(accum):
                g = self.dist.rank * accum + micro
                x, y = self._micro_batch(train_ds, step, g, parts)
                torch.manual_seed(derive_seed(cfg.seed, step, g, 1))  # dropout
                # gradients are all-reduced only on the last micro-step
                sync = micro == accum - 1 or not self.dist.enabled
                with (contextlib.nullcontext() if sync else model.no_sync()):
                    with self.autocast():
                        _, loss = model(x, y, return_logits=False)  # fused head + loss: no (B, T, V) logits
                        loss = loss / accum
                    loss.backward()
                loss_sum += loss.detach()  # in place: into stats[0]
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip) \
                if cfg.grad_clip > 0 else no_grad_norm
            # stats[0] becomes the mean loss over ranks, stats[1] > 0 if any rank was asked to stop
            dist_utils.all_reduce_mean_and_flag(stats, stop.requested, self.dist)
            # one host sync per step for all three numbers (each .item() on CUDA is a sync of its own)
            step_loss, stop_flag, grad_norm = torch.cat([stats, grad_norm.float().reshape(1)]).tolist()
            bad = f"loss became {step_loss}" if not math.isfinite(step_loss) else \
                f"gradient norm became {grad_norm}" if not math.isfinite(grad_norm) else None
            if bad:  # stop before the optimizer spreads it into the weights (and into a checkpoint)
                bar.close()
                kept = f"{self.out / 'latest.pt'} (after step {last_saved})" if last_saved is not None \
                    else "none (no checkpoint written yet)"
                result.stopped_early = f"{bad} at step {step + 1}; stopped without applying it. " \
                                       f"Last good checkpoint: {kept}"
                raise TinyLLMError(result.stopped_early)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            steps_since += 1
            result.step = step
            now = time.perf_counter()
            if now - t_last > 0.5 or step == cfg.max_iters or step % cfg.eval_interval == 0:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                    now = time.perf_counter()
                tps = steps_since * tokens_per_step / (now - t_last)
                t_last, steps_since = now, 0
                post = {"loss": f"{step_loss:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tps:,.0f}"}
                if peak:
                    post["mfu"] = f"{mfu(flops_per_token, tps, peak, world):.1%}"
                bar.set_postfix(post, refresh=False)
            bar.update(1)
            result.tokens_per_sec = tps
            if step % cfg.eval_interval == 0 or step == cfg.max_iters:
                evaluate(step, step_loss, lr, tps)
            saved = step % cfg.checkpoint_interval == 0 or step == cfg.max_iters
            if saved:
                save_latest(step, lr)
            if saved or step % cfg.eval_interval == 0:
                t_last = time.perf_counter()  # evaluation and checkpoint time is not training throughput
            # under DDP every rank acts on the reduced flag, so all stop at the same step; a single
            # process also sees a signal that came during this step's evaluation or checkpoint
            stop_now = stop_flag > 0 if self.dist.enabled else stop.requested
            if stop_now:
                if not saved:
                    save_latest(step, lr)
                result.stopped_early = f"stopped by {stop.signal_name or 'a signal'} at step {step}; " \
                                       f"checkpoint saved to {self.out / 'latest.pt'}"
                bar.close()
                self.log(result.stopped_early)
                break
        bar.close()

        if self.main:
            if result.val_loss is None:  # resumed a finished run: nothing trained, so measure once
                result.train_loss = self.estimate_loss(fwd, train_ds, 0)
                result.val_loss = self.estimate_loss(fwd, val_ds, 1)
            from .plot import plot_metrics
            plot_metrics(metrics_path, self.out / "loss.png")
            if not is_qa:
                from ..data.tokens import unigram_entropy
                result.val_unigram_entropy = unigram_entropy(val_ds.arrays, tok.vocab_size)
            self.tokenizer, self.model, self.sample_prompt, self.is_qa = tok, raw, sample_prompt, is_qa
        return result
