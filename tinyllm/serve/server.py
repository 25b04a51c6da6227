"""Start the server: load the checkpoint, bind the socket, run uvicorn until Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import socket

from ..errors import TinyLLMError
from .config import ServeConfig


def bind(host: str, port: int) -> socket.socket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says
        # TCP, and with Nagle on, a response's body waited for the client's delayed ACK of its headers:
        # 40 ms on every request after the first on a kept-alive connection
        sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux
        sock.bind(info[4])
    except OSError as e:
        raise TinyLLMError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    return sock


def run_server(cfg: ServeConfig, out) -> int:
    import torch
    import uvicorn

    from ..train.checkpoint import load_checkpoint
    from ..train.distributed import resolve_device
    from .app import create_app
    from .engine import Engine

    device = resolve_device(cfg.device)
    if cfg.threads is not None and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    model, tokenizer, info = load_checkpoint(cfg.checkpoint, device=device)
    model.pack_for_inference()  # the weights never change while serving
    engine = Engine(model, tokenizer, cfg.max_batch, cfg.max_queue)
    app = create_app(engine, tokenizer, info, cfg.model_name)
    sock = bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host

    early: list[int] = []  # SIGINT / SIGTERM seen outside uvicorn's handlers (see below)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # uvicorn re-raises the signal after shutdown; we exit 0 instead
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting for requests (a repeated SIGTERM waits)
            self.should_exit = True

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if early:  # a signal came just before uvicorn took the signals: stop now
                self.should_exit = True

    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=cfg.shutdown_timeout, lifespan="on", access_log=False
    )
    print(
        f"serving {cfg.model_name} ({'Q&A' if info.get('is_qa') else 'text'}, max_batch {cfg.max_batch}) "
        f"at http://{shown}:{port}  (chat page: http://{shown}:{port}/, API: http://{shown}:{port}/v1)",
        file=out,
        flush=True,
    )
    # what uvicorn puts back once it has stopped: a SIGTERM or Ctrl-C after that (a service manager
    # signalling again) is noted, not a kill with status -15 after a clean stop; one in the moment before
    # uvicorn takes the signals stops the server once it has started
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: early.append(signum))
    Server(config).run(sockets=[sock])
    # stopped: the rest of the process's end (interpreter finalization puts the default handlers back)
    # holds SIGINT / SIGTERM blocked, so the exit status stays 0
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    print("server stopped", file=out, flush=True)
    return 0
