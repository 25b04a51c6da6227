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

For each preset (random weights, as `tinyllm bench serve` makes them): llama-server with `-np N` slots
(N = 1, 4, 16; `-c` = N x context, `-t 1 -tb 1`) serving N concurrent streams, then `tinyllm serve
--max_batch 64 --threads 1` serving 1, 4 and 16; each stream sends --rounds requests (12 at one
stream) of 64 greedy tokens after the benchmark prompt (llama-server with `ignore_eos`; ours never
stops early on these weights), tokens counted from each response's `usage`. The client is httpx
without keep-alive for both: llama-server closed reused keep-alive connections under load (httpx:
"Server disconnected without sending a response"). Prints one line per setting; nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import httpx

from tinyllm.bench import serve as S
from tinyllm.export import export_checkpoint

STREAMS = (1, 4, 16)


async def one(c: httpx.AsyncClient, url: str, tokens: int, extra: dict) -> int:
    """-> completion tokens of one streamed request (its usage chunk)."""
    body = {
        "model": "bench.pt",
        "prompt": S.PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    used = None
    async with c.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    used = chunk["usage"]["completion_tokens"]
    if used is None:
        raise RuntimeError(f"{url}: a streamed response carried no usage")
    return used


async def drive(url: str, streams: int, rounds: int, tokens: int, extra: dict) -> tuple[float, int]:
    """`streams` clients, each sending `rounds` requests one after another -> (tokens/s, tokens)."""
    limits = httpx.Limits(max_connections=streams + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as c:
        await one(c, url, 4, extra)  # warm-up

        async def client() -> int:
            return sum([await one(c, url, tokens, extra) for _ in range(rounds)])

        t0 = time.perf_counter()
        n = sum(await asyncio.gather(*(client() for _ in range(streams))))
        return n / (time.perf_counter() - t0), n


def wait_healthy(url: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not come up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True, help="the llama-server binary")
    ap.add_argument("--preset", nargs="+", default=["demo", "tiny"], choices=["demo", "tiny"])
    ap.add_argument("--rounds", type=int, default=3, help="requests per stream (1 stream: 4x this)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--port", type=int, default=18000, help="llama-server's port (127.0.0.1)")
    args = ap.parse_args()
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
                    wait_healthy(url, proc)
                    rate, got = asyncio.run(
                        drive(url, n, args.rounds * (4 if n == 1 else 1), args.tokens, {"ignore_eos": True})
                    )
                finally:
                    proc.terminate()
                    proc.wait()
                print(
                    f"{preset}  llama-server -np {n:<2d} -t 1   {n:2d} streams  {rate:7.0f} tok/s  ({got} tokens)",
                    flush=True,
                )
            proc, url = S.start_server(ckpt, 64, 1)
            try:
                for n in STREAMS:
                    rate, got = asyncio.run(drive(url, n, args.rounds * (4 if n == 1 else 1), args.tokens, {}))
                    print(
                        f"{preset}  tinyllm serve --threads 1  {n:2d} streams  {rate:7.0f} tok/s  ({got} tokens)",
                        flush=True,
                    )
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
