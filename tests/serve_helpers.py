"""Shared by the tests/test_serve*.py files: a tiny Q&A checkpoint trained in the test, and the real
`tinyllm serve` process on 127.0.0.1 and a free port (started as a subprocess, polled on /health)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

QA_TRAIN = dict(data="qa", max_iters=500, d_model=32, n_layers=2, n_heads=2, d_ff=64, eval_interval=500)


def train_qa_checkpoint(out_dir: Path) -> Path:
    """A 0.05M-parameter Q&A model trained on the shipped demo set (~10 s on 2 cores): its greedy
    answers are real text and many end at <EOS>."""
    from tinyllm.train import Trainer, resolve_run

    Trainer(resolve_run(**QA_TRAIN, out_dir=str(out_dir), progress=False, device="cpu")).run()
    return out_dir / "best.pt"


class ServeProcess:
    """`python -m tinyllm serve --checkpoint CKPT --port 0 ARGS...`; .url once /health answers."""

    def __init__(self, checkpoint: Path, *args: str, threads: int | None = 1):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
        if threads is None:  # the server's own default
            del env["OMP_NUM_THREADS"]
        cmd = [sys.executable, "-m", "tinyllm", "serve", "--checkpoint", str(checkpoint), "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()  # "serving NAME (...) at http://127.0.0.1:PORT ..."
        m = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"tinyllm serve did not start: {line!r} {self.proc.stderr.read()!r}")
        self.url = m.group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError(f"tinyllm serve never became healthy: {self.proc.stderr.read()!r}")
            time.sleep(0.1)

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a service manager would: -> the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def wait_idle(self, timeout: float = 10) -> dict:
        """/health once nothing runs or waits (slots are freed by the scheduler's next step)."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if (h["running"] == 0 and h["waiting"] == 0) or time.monotonic() > deadline:
                return h
            time.sleep(0.05)


def shared_qa_checkpoint(tmp_path_factory) -> Path:
    """One trained checkpoint for the whole session, whichever serve test file asks first."""
    out = tmp_path_factory.getbasetemp() / "serve_qa"
    if not (out / "best.pt").exists():
        train_qa_checkpoint(out)
    return out / "best.pt"


def long_answer_checkpoint(tmp_path_factory, qa_checkpoint: Path, context: int = 1024) -> Path:
    """Random weights of a 1M-parameter shape with a long context and the Q&A checkpoint's tokenizer:
    with ignore_eos, every answer takes context - prompt tokens (0.27 ms each in `tinyllm serve` on this
    CPU, measured), so one request can hold a slot for seconds."""
    import torch

    from tinyllm.model import ModelConfig, TinyLLM
    from tinyllm.train.checkpoint import TrainState, load_checkpoint

    out = tmp_path_factory.getbasetemp() / "serve_long" / "long.pt"
    if not out.exists():
        _, tok, _ = load_checkpoint(qa_checkpoint)
        cfg = ModelConfig(vocab_size=tok.vocab_size, context_length=context, d_model=128, n_layers=4, n_heads=4,
                          d_ff=256, dropout=0.0)  # fmt: skip
        torch.manual_seed(0)
        out.parent.mkdir(parents=True, exist_ok=True)
        TrainState(model=TinyLLM(cfg).state_dict(), model_config=cfg.to_dict(), tokenizer=tok.to_str()).save(out)
    return out
