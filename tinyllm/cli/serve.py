"""`tinyllm serve`: an OpenAI-compatible server for a checkpoint, with continuous batching and a
web chat page at / (tinyllm/serve/)."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    s = sub.add_parser(
        "serve",
        help="serve a checkpoint over an OpenAI-compatible HTTP API, with a web chat page",
        description="Serve CHECKPOINT: GET /health, GET /v1/models, POST /v1/completions, "
        "POST /v1/chat/completions, and a chat page at /. Requests are decoded together (continuous "
        "batching); batching never changes an answer. Ctrl-C or SIGTERM finishes in-flight requests "
        "(up to --shutdown_timeout seconds), then exits 0.",
    )
    s.add_argument("--checkpoint", required=True, help="checkpoint file (e.g. out/demo/best.pt)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free port)")
    s.add_argument("--max_batch", type=int, default=16, help="sequences decoded together (default: 16; 1 = off)")
    s.add_argument("--max_queue", type=int, default=64, help="sequences waiting for a slot before 429 (default: 64)")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    s.add_argument("--model_name", default=None, help="the model id clients use (default: the checkpoint's name)")
    s.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the decode loop on CPU (default: all cores but one, which the HTTP side needs; "
        "OMP_NUM_THREADS when set)",
    )
    s.add_argument(
        "--shutdown_timeout", type=float, default=10.0, help="seconds to let in-flight requests finish on exit"
    )
    s.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from pathlib import Path

    from ..serve.config import ServeConfig
    from ..serve.server import run_server

    cfg = ServeConfig(
        checkpoint=args.checkpoint,
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        device=args.device,
        model_name=args.model_name or Path(args.checkpoint).name,
        shutdown_timeout=args.shutdown_timeout,
        threads=args.threads if args.threads is not None else default_threads(),
    )
    return run_server(cfg, out=sys.stdout)


def default_threads() -> int | None:
    """All cores but one when OMP_NUM_THREADS is not the user's, else None (keep it). The decode loop
    runs many small ops, and the event loop that parses requests and writes every token needs a core of
    its own: on 2 cores one decode thread served 1.3x (tiny) and 2.0x (demo) the tokens/s of two at 16
    streams (benchmarks/README.md, "Serving")."""
    from .. import usable_cores
    from . import THREADS_DEFAULTED

    return max(1, usable_cores() - 1) if THREADS_DEFAULTED else None
