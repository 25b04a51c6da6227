"""`tinyllm bench train`: training-step throughput against transformers (tinyllm/bench/train.py)."""

from __future__ import annotations

import argparse
import sys


def bench_doc() -> str:
    """bench/train.py's docstring after its first line, read without importing it (it imports torch)."""
    import ast
    from pathlib import Path

    src = (Path(__file__).resolve().parents[1] / "bench" / "train.py").read_text()
    return ast.get_docstring(ast.parse(src)).split("\n\n", 1)[1]


def cmd_bench(args) -> int:
    from ..bench.train import bench_train, report, results_path, write_rows
    from ..io import check_output_file

    if args.out:
        check_output_file(results_path(args.out), "--out")  # before the benchmark, not after it
    r = bench_train(args)
    print(report(r))
    if args.out:
        print(f"appended a row to {write_rows(r, args.out)}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (train: training steps against Hugging Face transformers)")
    bsub = b.add_subparsers(dest="bench_cmd", required=True, metavar="WHAT")
    add_train_parser(bsub)
    add_serve_parser(bsub)


def add_train_parser(bsub) -> None:
    from ..bench import BENCH_SIZES
    from ..model.config import SHAPE_FIELDS
    from ..train.presets import PRESETS

    t = bsub.add_parser(
        "train",
        help="tokens/s of training steps, TinyLLM vs transformers' GPT2LMHeadModel",
        description=bench_doc(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument(
        "--preset",
        choices=[*PRESETS, *BENCH_SIZES],
        default="tiny",
        help="model size (default: tiny; gpt2 = GPT-2 small, 124M, context 1024)",
    )
    t.add_argument("--batch_size", type=int, default=8, help="sequences per step (default: 8)")
    for name in SHAPE_FIELDS:
        t.add_argument(f"--{name}", type=int, default=None, help=f"override the size's {name}")
    t.add_argument("--steps", type=int, default=10, help="timed steps per model (default: 10)")
    t.add_argument("--warmup", type=int, default=3, help="untimed steps per model first (default: 3)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    t.add_argument(
        "--dtype", default="auto", help="auto (bfloat16 autocast on CUDA, float32 on CPU), float32 or bfloat16"
    )
    t.add_argument("--compile", action="store_true", help="torch.compile both models")
    t.add_argument(
        "--attention",
        default="auto",
        choices=["auto", "sdpa", "triton", "reference"],
        help="our attention backend (default: auto = sdpa)",
    )
    t.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    t.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after timing, profile N more steps of each model and print where the time goes "
        "(GPU kernels on CUDA, aten ops on CPU), by category and top ops (default: 0, off)",
    )
    t.add_argument("--seed", type=int, default=0, help="seed for weights and the batch")
    t.add_argument(
        "--out",
        default=None,
        help="append a CSV row to this file, or to train.csv in this folder (e.g. benchmarks/results)",
    )
    t.set_defaults(func=cmd_bench)


def add_serve_parser(bsub) -> None:
    sv = bsub.add_parser(
        "serve",
        help="tokens/s, TTFT and inter-token latency of `tinyllm serve` at 1/4/16/64 streams, vs batching off "
        "and transformers' generate",
    )
    sv.add_argument("--preset", nargs="+", choices=["demo", "tiny"], default=["demo", "tiny"], help="model shapes")
    sv.add_argument("--tokens", type=int, default=64, help="new tokens per request (default: 64)")
    sv.add_argument("--rounds", type=int, default=1, help="requests per stream (1 stream: 4x this; default: 1)")
    sv.add_argument("--threads", type=int, default=2, help="CPU threads of the server and of the baselines")
    sv.add_argument("--out", default=None, help="append CSV rows to this file, or to serve.csv in this folder")
    sv.set_defaults(func=cmd_bench_serve)


def cmd_bench_serve(args) -> int:
    from ..bench.serve import bench_serve, report, write_rows

    rows = [r for p in args.preset for r in bench_serve(p, args.tokens, args.rounds, args.threads)]
    print(report(rows))
    if args.out:
        print(f"appended {len(rows)} rows to {write_rows(rows, args.out)}", file=sys.stderr)
    return 0
