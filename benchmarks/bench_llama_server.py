"""llama.cpp's own server with parallel slots against `tinyllm serve`, on the same checkpoint (its GGUF
export), driven by the same client: the row issue 13 asks for that `tinyllm bench serve` cannot make
(llama-cpp-python's wheel builds the library, not the `llama-server` binary).

Build llama-server from the llama.cpp that llama-cpp-python vendors (its sdist, from PyPI):

    pip download llama-cpp-python==0.3.36 --no-binary :all: --no-deps -d /tmp/lcpp
    tar xzf /tmp/lcpp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcpp
    cd /tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON && cmake --build build --target llama-server -j 2

then:

    OMP_NUM_THREADS=1 python benchmarks/bench_llama_server.py --server .../build/bin/llama-server --preset demo tiny

For each preset (random weights, as `tinyllm bench serve` makes them): llama-server with `-np N`
slots (N = 1, 4, 16; `-c` = N x context, `-t 1 -tb 1`) serving N concurrent streams, then `tinyllm
serve --max_batch 64 --threads 1` serving 1, 4 and 16; each stream sends --rounds requests (12 at
one stream) of 64 greedy tokens after the benchmark prompt (both with `ignore_eos`), tokens counted
from each response's `usage`. The client is httpx without keep-alive for both: llama-server closed
reused keep-alive connections under load (httpx: "Server disconnected without sending a response").
Prints one line per setting; nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import warnings
from pathlib import Path

from tinyllm.bench import serve as S
from tinyllm.export import export_checkpoint

STREAMS = (1, 4, 16)


def show(what: str, streams: int, row: dict) -> None:
    print(
        f"{what}  {streams:2d} streams  {row['tokens_per_s']:7.0f} tok/s  ({row['tokens']} tokens; TTFT p50 "
        f"{row['ttft_p50_ms']:.1f} ms, ITL p50 {row['itl_p50_ms']:.2f} ms)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True, help="the llama-server binary")
    ap.add_argument("--preset", nargs="+", default=["demo", "tiny"], choices=["demo", "tiny"])
    ap.add_argument("--rounds", type=int, default=3, help="requests per stream (1 stream: 4x this)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--port", type=int, default=18000, help="llama-server's port (127.0.0.1)")
    args = ap.parse_args()

    def rounds(streams: int) -> int:
        return args.rounds * (4 if streams == 1 else 1)

    with tempfile.TemporaryDirectory(prefix="tinyllm-llama-server-") as d:
        for preset in args.preset:
            (Path(d) / preset).mkdir()
            ckpt = Path(d) / preset / "bench.pt"  # the model id both servers answer to
            _, _, cfg = S.make_checkpoint(preset, ckpt)
            gguf = ckpt.with_suffix(".gguf")
            with warnings.catch_warnings():  # the GPT-4 pre-tokenizer note: both servers get the same text
                warnings.simplefilter("ignore")
                export_checkpoint(ckpt, "gguf", gguf)
            for n in STREAMS:
                cmd = [args.server, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(args.port)]
                cmd += ["-np", str(n), "-c", str(cfg.context_length * n), "-t", "1", "-tb", "1", "--no-webui"]
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                url = f"http://127.0.0.1:{args.port}"
                try:
                    S.wait_healthy(url, proc)
                    row = asyncio.run(S.drive(url, n, rounds(n), args.tokens, keepalive=False))
                finally:
                    proc.terminate()
                    proc.wait()
                show(f"{preset}  llama-server -np {n:<2d} -t 1 ", n, row)
            proc, url = S.start_server(ckpt, 64, 1)
            try:
                for n in STREAMS:
                    show(
                        f"{preset}  tinyllm serve --threads 1",
                        n,
                        asyncio.run(S.drive(url, n, rounds(n), args.tokens, keepalive=False)),
                    )
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
