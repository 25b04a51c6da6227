"""ServeConfig: one field per `tinyllm serve` flag."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TinyLLMError


@dataclass
class ServeConfig:
    checkpoint: str
    """Checkpoint file to serve (train/checkpoint.py's format, e.g. out/demo/best.pt)."""
    host: str = "127.0.0.1"
    """Address to bind; localhost unless told otherwise (0.0.0.0 exposes the server to the network)."""
    port: int = 8000
    """TCP port; 0 picks a free one (the printed URL names it)."""
    max_batch: int = 16
    """Most sequences decoded together in one step (KV-cache slots); 1 turns batching off."""
    max_queue: int = 64
    """Most sequences waiting for a slot; beyond it a request is answered 429 with Retry-After."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    model_name: str | None = None
    """The model id /v1/models lists and requests name (default: the checkpoint's file name)."""
    shutdown_timeout: float = 10.0
    """Seconds Ctrl-C / SIGTERM waits for in-flight requests to finish before cancelling them."""
    threads: int | None = None
    """torch threads of the decode loop on CPU (None: leave torch's setting)."""

    def __post_init__(self):
        for name in ("max_batch", "max_queue"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise TinyLLMError(f"--{name} must be a positive integer, got {v!r}")
        if not 0 <= self.port <= 65535:
            raise TinyLLMError(f"--port must be in 0..65535, got {self.port}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise TinyLLMError(f"--threads must be a positive integer, got {self.threads!r}")
        if self.shutdown_timeout < 0:
            raise TinyLLMError(f"--shutdown_timeout must be >= 0, got {self.shutdown_timeout}")
