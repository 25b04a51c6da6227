"""The scheduler: one thread owns the model and runs continuous batching over KV-cache slots.

Each loop iteration is one step:
1. drop cancelled sequences (their slot is free again at once);
2. admit waiting sequences while slots are free: prefill each prompt alone into its slot
   (model.prefill, the very call `tinyllm generate` makes) and sample its first token;
3. one decode step for every running sequence together: model.forward_rows, one token per row,
   each row at its own position in its own slot;
4. sample each row with that sequence's own torch.Generator, feed its text filters, finish it at
   <EOS>, a stop string or max_tokens.
Why batching never changes an answer: prefill runs alone; a row's logits from forward_rows do not
depend on the others (the C++ step sums in a fixed order, the torch path pads rows: model/gpt.py);
sampling is per row with per-request generators. The slow, obvious reference is
generate.generate_ids on each request alone (tests/test_serve_engine.py compares them token for token).

Requests reach the thread through `submit` (a bounded queue: QueueFull beyond max_queue); results
leave through each Job's `emit` callback, called on this thread (the app makes it thread-safe).
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..generate.sampling import sample_next
from .text import TextStream

log = logging.getLogger("tinyllm.serve")


class QueueFull(Exception):
    """More sequences than --max_queue would be waiting."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work."""


@dataclass(eq=False)  # identity: the scheduler finds a job in its lists by `is`
class Job:
    """One sequence to generate (one choice of a request)."""

    prompt_ids: list[int]
    max_tokens: int
    text: TextStream
    emit: Callable[[tuple], None]
    """Called with ("text", piece), then ("done", finish_reason, n_tokens) or ("error", message)."""
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    ignore_eos: bool = False
    """<EOS> is masked out before sampling: the job runs to max_tokens (or a stop string)."""
    cancelled: bool = False
    # the scheduler's state
    slot: int | None = None
    cache: object = None
    generator: torch.Generator | None = None
    last: int = 0
    n_out: int = 0
    out_ids: list[int] = field(default_factory=list)
    """The ids generated so far (<EOS> not included)."""
    done: bool = field(default=False, repr=False)


class Engine:
    def __init__(self, model, tokenizer, max_batch: int, max_queue: int):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.device = next(model.parameters()).device
        self.slots = model.new_slot_cache(max_batch)
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: list[Job] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.steps = 0
        self.peak_batch = 0  # most rows seen in one decode step
        self.cancelled = 0  # jobs that left before their end (a client went away)
        self.thread = threading.Thread(target=self._loop, name="tinyllm-scheduler", daemon=True)

    # --- called from the server's threads --------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current step; every unfinished job gets ("error", ...)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.thread.is_alive():
            self.thread.join()

    def submit(self, jobs: list[Job]) -> None:
        with self.cond:
            if self.stopping:
                raise ShuttingDown
            if len(self.waiting) + len(jobs) > self.max_queue:
                raise QueueFull
            self.waiting.extend(jobs)
            self.cond.notify_all()

    def cancel(self, jobs: list[Job]) -> None:
        """Free these jobs' slots at the next step (a client went away)."""
        for j in jobs:
            j.cancelled = True
        with self.cond:
            self.cond.notify_all()

    def stats(self) -> dict:
        with self.cond:
            return {
                "running": len(self.running),
                "waiting": len(self.waiting),
                "free_slots": len(self.slots.free),
                "max_batch": self.max_batch,
                "steps": self.steps,
                "peak_batch": self.peak_batch,
                "cancelled": self.cancelled,
            }

    # --- the scheduler thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not self.running:
                    self.cond.wait()
                if self.stopping:
                    break
                for job in [j for j in self.waiting if j.cancelled]:  # gone before it got a slot
                    self.waiting.remove(job)
                    self.cancelled += 1
                    job.emit(("done", "cancelled", 0))
                admit = []
                while self.waiting and len(admit) < len(self.slots.free):
                    admit.append(self.waiting.popleft())
            try:
                self._step(admit)
            except Exception as e:  # a bug must not take the server down: fail this step's jobs, go on
                log.exception("decode step failed")
                for job in [*self.running, *admit]:
                    self._finish(job, error=f"generation failed: {type(e).__name__}: {e}")
        with self.cond:
            left = [*self.running, *self.waiting]
            self.waiting.clear()
        for job in left:
            self._finish(job, error="the server is shutting down")

    def _step(self, admit: list[Job]) -> None:
        for job in [j for j in self.running if j.cancelled]:
            self._finish(job, "cancelled")
        for job in admit:
            self._prefill(job)
        live = [j for j in self.running if not j.done and not j.cancelled]
        if live:
            logits = self.model.forward_rows([j.last for j in live], [j.cache for j in live])  # (B, V)
            self.steps += 1
            self.peak_batch = max(self.peak_batch, len(live))
            self._mask_eos(logits, [r for r, j in enumerate(live) if j.ignore_eos])
            # greedy rows in one argmax (each row's own argmax, as sample_next takes it, not a batch-wide op)
            greedy = [r for r, j in enumerate(live) if j.temperature == 0]
            picked = dict(zip(greedy, logits[greedy].argmax(dim=-1).tolist())) if greedy else {}
            for r, job in enumerate(live):
                self._take(job, logits[r : r + 1], picked.get(r))

    def _prefill(self, job: Job) -> None:
        job.slot = self.slots.acquire()
        job.cache = self.slots.view(job.slot)
        with self.cond:
            self.running.append(job)
        seed = job.seed if job.seed is not None else secrets.randbits(63)
        job.generator = torch.Generator(device=self.device).manual_seed(seed)
        logits = self.model.prefill(job.prompt_ids, job.cache)  # (1, V): the prompt alone, as generate_ids runs it
        self._mask_eos(logits, [0] if job.ignore_eos else [])
        self._take(job, logits)

    def _mask_eos(self, logits: torch.Tensor, rows: list[int]) -> None:
        """<EOS> gets probability 0 in these rows of logits (B, V), as llama-server's ignore_eos does."""
        if rows:
            logits[rows, self.tokenizer.eos_id] = float("-inf")

    def _take(self, job: Job, logits: torch.Tensor, nxt: int | None = None) -> None:
        """Sample job's next token from its logits (1, V) (unless the step picked it: nxt) and pass it
        on; finish the job when it ends."""
        if nxt is None:
            try:
                nxt = int(sample_next(logits, job.temperature, job.top_k, job.top_p, job.generator)[0])
            except RuntimeError as e:  # e.g. logits that are all NaN: this job fails, the others go on
                self._finish(job, error=f"sampling failed: {e}")
                return
        if nxt == self.tokenizer.eos_id:
            self._finish(job, "stop")
            return
        job.last, job.n_out = nxt, job.n_out + 1
        job.out_ids.append(nxt)
        piece = job.text.feed(nxt)
        if piece:
            job.emit(("text", piece))
        if job.text.stopped:
            self._finish(job, "stop")
        elif job.n_out >= job.max_tokens:
            self._finish(job, "length")

    def _finish(self, job: Job, reason: str | None = None, error: str | None = None) -> None:
        if job.done:
            return
        job.done = True
        if job.slot is not None:
            self.slots.release(job.slot)
            job.slot, job.cache = None, None
        with self.cond:
            if job in self.running:
                self.running.remove(job)
        if error is not None:
            job.emit(("error", error))
            return
        if reason == "cancelled":
            self.cancelled += 1
        else:
            tail = job.text.finish()
            if tail:
                job.emit(("text", tail))
        job.emit(("done", reason, job.n_out))
