"""The training loop: single process or torchrun DDP, exact resume, atomic checkpoints.

Determinism: the batch of micro-step g of step s is drawn from a generator seeded
by (seed, s, g), and dropout is reseeded the same way before each micro-step. So a
run is a function of its seed alone: a resumed run replays exactly the batches the
uninterrupted run would have seen, and 2 ranks x A micro-steps see the same samples
as 1 rank x 2A micro-steps.
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
from ..model import ModelConfig, TinyLLM
from . import distributed as dist_utils
from .checkpoint import (config_mismatch, keep_history, read_checkpoint, rng_state, save_checkpoint,
                         set_rng_state)
from .config import TrainConfig
from .schedule import lr_at

# Dense bf16 peak FLOP/s by device name, for MFU (vendor datasheets, SXM parts).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "4090": 165e12}


def derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


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
    """SIGTERM / SIGINT: finish the current step, write a checkpoint, exit 0."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, model_overrides: dict | None = None):
        self.cfg = cfg
        self.model_cfg = model_cfg
        self.model_overrides = model_overrides or {}
        self.out = Path(cfg.out_dir)
        self.dist, self.device = dist_utils.setup(cfg.device)
        self.main = self.dist.is_main
        if cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and self.device.type == "cuda"):
            self.autocast = lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        else:
            self.autocast = contextlib.nullcontext

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, file=sys.stderr, flush=True)

    # ---- setup -----------------------------------------------------------------------------
    def _resume_checkpoint(self) -> dict | None:
        r = self.cfg.resume
        if not r:
            return None
        path = self.out / "latest.pt" if r == "auto" else Path(r)
        if r == "auto" and not path.exists():
            self.log(f"no checkpoint at {path}: starting from scratch")
            return None
        return read_checkpoint(path)

    def _setup_data(self, ckpt: dict | None, init: dict | None):
        from ..data.pipeline import build_token_files, load_corpus, load_shards, split_documents, train_tokenizer
        from ..tokenizer import Tokenizer

        cfg, out = self.cfg, self.out
        data_path = Path(cfg.data)
        if data_path.is_dir() and (data_path / "meta.json").exists():  # shards from `tinyllm prepare`
            meta = json.loads((data_path / "meta.json").read_text())
            tok_src = ckpt or init
            tok = Tokenizer.from_str(tok_src["tokenizer"]) if tok_src else \
                Tokenizer.load(cfg.tokenizer or data_path / meta.get("tokenizer", "tokenizer.txt"))
            train_ds, val_ds, meta = load_shards(data_path, self.model_cfg.context_length)
            return tok, train_ds, val_ds, False, meta.get("sample_prompt", "")

        corpus = load_corpus(cfg.data)
        tok_file, tok_meta = out / "tokenizer.txt", out / "tokenizer.json"
        if self.main:
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
                    tok.save(tok_file)
                    from ..io import atomic_open
                    with atomic_open(tok_meta) as f:
                        json.dump(key, f)
            tok.save(tok_file)
        dist_utils.barrier(self.dist)
        if not self.main:
            tok = Tokenizer.load(tok_file)

        if corpus.is_qa:
            from ..data.packed import PackedQADataset
            from ..data.qa import load_qa
            pairs = load_qa(cfg.data)
            train_pairs, val_pairs = split_documents(pairs)
            T = self.model_cfg.context_length
            train_ds = PackedQADataset(train_pairs, tok, T, cfg.loss_on, f"{cfg.data} (train)")
            val_ds = PackedQADataset(val_pairs, tok, T, cfg.loss_on, f"{cfg.data} (val)")
            return tok, train_ds, val_ds, True, ""
        if self.main:
            build_token_files(corpus, tok, out / "data", self.model_cfg.context_length)
        dist_utils.barrier(self.dist)
        train_ds, val_ds, _ = build_token_files(corpus, tok, out / "data", self.model_cfg.context_length)
        _, val_docs = split_documents(corpus.documents)
        prompt = " ".join(val_docs[0].split()[:4]) if val_docs else ""
        return tok, train_ds, val_ds, False, prompt

    # ---- one step ----------------------------------------------------------------------------
    def _micro_batch(self, ds, step: int, g: int):
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, step, g))
        x, y = ds.sample(gen, self.cfg.batch_size)
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
                _, loss = model(x.to(self.device), y.to(self.device))
            losses.append(loss.item())
        model.train()
        return float(np.mean(losses))

    # ---- the run -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            dist_utils.teardown(self.dist)

    def _run(self) -> TrainResult:
        cfg = self.cfg
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        ckpt = self._resume_checkpoint()
        init = read_checkpoint(cfg.init_from) if cfg.init_from and not ckpt else None

        # the model's shape comes from the checkpoint when resuming or fine-tuning
        if ckpt or init:
            saved = dict((ckpt or init)["model_config"])
            if ckpt:
                diff = config_mismatch(saved, self.model_cfg.to_dict()) if self.model_overrides else []
                if diff:
                    raise TinyLLMError(f"cannot resume from {cfg.resume}: model config differs ({'; '.join(diff)})")
            saved.update(attention=self.model_cfg.attention, dropout=self.model_cfg.dropout)
            self.model_cfg = ModelConfig.from_dict(saved)

        tok, train_ds, val_ds, is_qa, sample_prompt = self._setup_data(ckpt, init)
        if tok.vocab_size != self.model_cfg.vocab_size:
            if tok.vocab_size > self.model_cfg.vocab_size or ckpt or init:
                raise TinyLLMError(f"tokenizer has {tok.vocab_size} tokens but the model's vocab_size is "
                                   f"{self.model_cfg.vocab_size}")
            self.log(f"note: the corpus only supports {tok.vocab_size} tokens; using vocab_size {tok.vocab_size}")
            self.model_cfg = ModelConfig.from_dict({**self.model_cfg.to_dict(), "vocab_size": tok.vocab_size})

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        raw = TinyLLM(self.model_cfg, device=self.device)
        if init:
            raw.load_state_dict(init["model"])
        if ckpt:
            raw.load_state_dict(ckpt["model"])
        opt = raw.configure_optimizer(cfg.max_lr, cfg.weight_decay, device_type=self.device.type)
        start_step, best_val = 0, float("inf")
        if ckpt:
            opt.load_state_dict(ckpt["optimizer"])
            start_step = int(ckpt["step"])
            best_val = float(ckpt.get("best_val_loss", float("inf")))
            set_rng_state(ckpt["rng"])
        fwd = torch.compile(raw) if cfg.compile else raw
        model = fwd
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            model = DDP(fwd, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        n_params = raw.num_params()
        self.log(f"model: {n_params / 1e6:.2f}M parameters ({self.model_cfg.d_model}d, {self.model_cfg.n_layers} "
                 f"layers, {self.model_cfg.n_heads} heads, {raw.backend} attention) on {self.device}"
                 + (f" x {self.dist.world_size} ranks" if self.dist.enabled else ""))
        self.log(f"data: {train_ds.num_tokens:,} train tokens, {val_ds.num_tokens:,} val tokens")

        tokens_per_step = cfg.batch_size * cfg.grad_accumulation_steps * self.model_cfg.context_length \
            * self.dist.world_size
        peak = peak_flops(self.device)
        flops_per_token = raw.flops_per_token()
        metrics_path = self.out / "metrics.jsonl"
        result = TrainResult(self.out, start_step, best_val_loss=best_val)
        if self.main and not ckpt and metrics_path.exists():
            metrics_path.unlink()  # a fresh run starts a fresh log

        def checkpoint(path: Path, step: int):
            save_checkpoint(path, model=raw.state_dict(), optimizer=opt.state_dict(),
                            model_config=self.model_cfg.to_dict(), train_config=cfg.to_dict(),
                            step=step, best_val_loss=result.best_val_loss, tokenizer=tok.to_str(),
                            rng=rng_state(), is_qa=is_qa, n_params=n_params)

        def save_latest(step: int):
            if self.main:
                checkpoint(self.out / "latest.pt", step)
                keep_history(self.out / "latest.pt", self.out / "checkpoints", step, cfg.keep_checkpoints)
            dist_utils.barrier(self.dist)

        def evaluate(step: int, train_loss: float | None, lr: float, tps: float | None):
            if self.main:
                tl = self.estimate_loss(fwd, train_ds, 0)
                vl = self.estimate_loss(fwd, val_ds, 1)
                row = {"step": step, "train_loss": tl, "val_loss": vl, "lr": lr, "tokens_per_sec": tps,
                       "batch_train_loss": train_loss, "tokens": step * tokens_per_step}
                if peak and tps:
                    row["mfu"] = flops_per_token * tps / (peak * self.dist.world_size)
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                result.metrics.append(row)
                result.train_loss, result.val_loss = tl, vl
                if vl < result.best_val_loss:
                    result.best_val_loss = vl
                    checkpoint(self.out / "best.pt", step)
                bar.write(f"step {step}: train loss {tl:.4f}, val loss {vl:.4f}", file=sys.stderr)
            dist_utils.barrier(self.dist)

        bar = tqdm(total=cfg.max_iters, initial=start_step, desc="training", unit="step", file=sys.stderr,
                   disable=not (self.main and cfg.progress), dynamic_ncols=True)
        accum = cfg.grad_accumulation_steps
        t_last, steps_since, tps = time.perf_counter(), 0, None
        lr = lr_at(start_step, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
        if start_step == 0 and start_step < cfg.max_iters:
            evaluate(0, None, lr, None)
        step = start_step
        with StopRequest() as stop:
            while step < cfg.max_iters:
                lr = lr_at(step, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
                for group in opt.param_groups:
                    group["lr"] = lr
                loss_sum = torch.zeros((), device=self.device)
                for micro in range(accum):
                    g = self.dist.rank * accum + micro
                    x, y = self._micro_batch(train_ds, step, g)
                    torch.manual_seed(derive_seed(cfg.seed, step, g, 1))  # dropout
                    sync = micro == accum - 1 or not self.dist.enabled
                    with (contextlib.nullcontext() if sync else model.no_sync()), self.autocast():
                        _, loss = model(x, y)
                        loss = loss / accum
                    loss.backward()
                    loss_sum += loss.detach()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
                step_loss = dist_utils.all_reduce_mean(loss_sum, self.dist).item()
                if not math.isfinite(step_loss):
                    last = self.out / "latest.pt"
                    msg = (f"loss became {step_loss} at step {step}; stopping. The last good checkpoint is "
                           f"{last if last.exists() else '(none written yet)'}")
                    result.stopped_early = msg
                    raise TinyLLMError(msg)
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
                        post["mfu"] = f"{flops_per_token * tps / (peak * self.dist.world_size):.1%}"
                    bar.set_postfix(post, refresh=False)
                bar.update(1)
                result.tokens_per_sec = tps
                if step % cfg.eval_interval == 0 or step == cfg.max_iters:
                    evaluate(step, step_loss, lr, tps)
                    t_last = time.perf_counter()  # eval time is not training throughput
                if step % cfg.checkpoint_interval == 0 or step == cfg.max_iters:
                    save_latest(step)
                if dist_utils.broadcast_flag(stop.requested, self.dist, self.device):
                    if step % cfg.checkpoint_interval and step != cfg.max_iters:
                        save_latest(step)
                    result.stopped_early = f"stopped by signal at step {step}; checkpoint saved"
                    self.log(f"\n{result.stopped_early}")
                    break
        bar.close()

        if self.main:
            from .plot import plot_metrics
            plot_metrics(metrics_path, self.out / "loss.png")
            from ..data.pipeline import val_unigram_entropy
            if not is_qa:
                result.val_unigram_entropy = val_unigram_entropy(val_ds, tok.vocab_size)
            self.tokenizer, self.model, self.sample_prompt, self.is_qa = tok, raw, sample_prompt, is_qa
        return result
