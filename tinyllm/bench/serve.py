"""`tinyllm bench serve`: what `tinyllm serve` delivers under concurrent streams.

For a preset's shape (demo, tiny; random weights: speed does not depend on what was learned), it
starts the real server twice as a subprocess on 127.0.0.1 (continuous batching with --max_batch 64,
and batching off with --max_batch 1) and drives 1, 4, 16 and 64 concurrent streaming clients over
HTTP; each client asks for --tokens greedy tokens after a short prompt with ignore_eos, so <EOS>
never ends one early (the rows count the tokens really generated). Per setting: aggregate generated
tokens/s (all tokens over the wall time), time to first token and inter-token latency (p50, p99). In
the same run, single stream without HTTP: our generate_ids, and Hugging Face transformers'
GPT2LMHeadModel.generate with its KV cache on a GPT-2 of the same size (greedy, the same number of
new tokens), and llama.cpp (llama-cpp-python) on the GGUF export of the same checkpoint, where it
imports. llama.cpp's own server with parallel slots is not measured: the pip package builds the
library, not the llama-server binary.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

COLUMNS = [
    "date", "commit", "machine", "threads", "preset", "server", "streams", "requests", "tokens",
    "tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "load", "notes",
]  # fmt: skip
STREAMS = (1, 4, 16, 64)
PROMPT = "And it came to pass in those days, that"


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def make_checkpoint(preset: str, path: Path):
    """A checkpoint of the preset's shape with random weights and a tokenizer of its vocab_size
    trained on the Bible (as `tinyllm train --preset ...` would)."""
    import torch

    from ..data.corpus import bible_verses
    from ..model import ModelConfig, TinyLLM
    from ..tokenizer import Texts, Tokenizer
    from ..train.checkpoint import TrainState
    from ..train.presets import get_preset

    cfg = ModelConfig(**{**get_preset(preset).model.to_dict(), "dropout": 0.0})
    torch.manual_seed(0)
    model = TinyLLM(cfg)
    tok = Tokenizer.train(Texts(["\n".join(bible_verses())]), vocab_size=cfg.vocab_size, show_progress=False)
    TrainState(model=model.state_dict(), model_config=cfg.to_dict(), tokenizer=tok.to_str()).save(path)
    return model.eval().pack_for_inference(), tok, cfg  # as `tinyllm generate` and `tinyllm serve` load it


def start_server(ckpt: Path, max_batch: int, threads: int):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tinyllm", "serve", "--checkpoint", str(ckpt), "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--max_batch", str(max_batch), "--max_queue", "256"], stdout=subprocess.PIPE, text=True, env=env
    )
    url = re.search(r"at (http://\S+?)\s", proc.stdout.readline()).group(1)
    wait_healthy(url, proc)
    return proc, url


def wait_healthy(url: str, proc: subprocess.Popen) -> None:
    """Until GET url/health answers 200 (a minute at most); an error if the server exits first."""
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not come up")


async def one_stream(c, url: str, tokens: int, extra: dict | None = None) -> tuple[float, list[float], int]:
    """-> (time to first token, inter-token gaps, tokens generated) for one streaming request;
    extra: more body fields (another server's extensions)."""
    body = {
        "model": "bench.pt",
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,  # fixed-length answers (ours and llama-server's extension)
        "stream": True,
        "stream_options": {"include_usage": True},
        **(extra or {}),
    }
    t0 = time.perf_counter()
    stamps, n = [], 0
    async with c.stream("POST", url + "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                n = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["text"]:
                stamps.append(time.perf_counter())
    return stamps[0] - t0, [b - a for a, b in zip(stamps, stamps[1:])], n


async def drive(
    url: str, streams: int, rounds: int, tokens: int, extra: dict | None = None, keepalive: bool = True
) -> dict:
    """`streams` clients, each sending `rounds` requests one after another -> the row's numbers.
    keepalive=False: a new connection per request (llama-server drops reused ones under load)."""
    import httpx

    limits = httpx.Limits(max_connections=streams + 4, **({} if keepalive else {"max_keepalive_connections": 0}))
    async with httpx.AsyncClient(timeout=600, limits=limits) as c:
        await one_stream(c, url, 4, extra)  # warm-up
        t0 = time.perf_counter()
        # one stream = one request in flight at any time
        results = await asyncio.gather(*(client_rounds(c, url, rounds, tokens, extra) for _ in range(streams)))
        wall = time.perf_counter() - t0
    flat = [r for rs in results for r in rs]
    ttft = [r[0] for r in flat]
    itl = [g for r in flat for g in r[1]]
    n = sum(r[2] for r in flat)
    return dict(
        requests=len(flat),
        tokens=n,
        tokens_per_s=n / wall,
        ttft_p50_ms=1e3 * pct(ttft, 50),
        ttft_p99_ms=1e3 * pct(ttft, 99),
        itl_p50_ms=1e3 * pct(itl, 50),
        itl_p99_ms=1e3 * pct(itl, 99),
    )


async def client_rounds(c, url: str, rounds: int, tokens: int, extra: dict | None = None) -> list:
    return [await one_stream(c, url, tokens, extra) for _ in range(rounds)]


def llama_cpp_decoder(checkpoint: Path, cfg, threads: int):
    """-> decode(prompt ids, n) -> tokens generated, greedy, by llama.cpp on the GGUF export of the
    checkpoint (float32 weights, llama.cpp's default float16 KV cache), or None where llama-cpp-python
    does not import. The loop is llama-cpp-python's `generate` (sampling in C), stopped after n tokens."""
    try:
        import llama_cpp
    except ImportError:
        return None
    from ..export import export_checkpoint

    gguf = checkpoint.with_suffix(".gguf")
    with warnings.catch_warnings():  # the GPT-4 pre-tokenizer note: the benchmark feeds token ids, not text
        warnings.simplefilter("ignore")
        export_checkpoint(checkpoint, "gguf", gguf)
    llm = llama_cpp.Llama(
        str(gguf), n_ctx=cfg.context_length, n_threads=threads, n_threads_batch=threads, verbose=False
    )

    def decode(prompt: list[int], n: int) -> int:
        got = 0
        for _ in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, reset=True):
            got += 1
            if got == n:
                break
        return got

    return decode


def single_stream_in_process(model, cfg, tokens: int, repeats: int, threads: int, llama=None) -> dict:
    """Our generate_ids, transformers' generate and (when given) llama.cpp's decode, in turn, in this
    process -> tokens/s each (median over the repeats; a first round warms them up)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..generate import generate_ids

    torch.set_num_threads(threads)
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=cfg.vocab_size,
            n_positions=cfg.context_length,
            n_embd=cfg.d_model,
            n_layer=cfg.n_layers,
            n_head=cfg.n_heads,
            n_inner=cfg.d_ff,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    ).eval()
    prompt = list(range(10, 24))
    ids = torch.tensor([prompt])
    ours, theirs, cpp = [], [], []
    with torch.no_grad():
        for k in range(repeats + 1):
            t0 = time.perf_counter()
            n_ours = sum(1 for _ in generate_ids(model, prompt, tokens, temperature=0.0))
            t1 = time.perf_counter()
            out = hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )
            t2 = time.perf_counter()
            n_cpp = llama(prompt, tokens) if llama is not None else 0
            t3 = time.perf_counter()
            if k:  # the first round warms them up
                ours.append(n_ours / (t1 - t0))
                theirs.append((out.shape[1] - ids.shape[1]) / (t2 - t1))
                cpp.append(n_cpp / (t3 - t2))
    got = {"ours": statistics.median(ours), "transformers": statistics.median(theirs)}
    if llama is not None:
        got["llama.cpp"] = statistics.median(cpp)
    return got


def engine_in_process(model, tok, streams: int, rounds: int, tokens: int) -> tuple[int, float]:
    """The serve engine's scheduler alone, no HTTP: `streams` greedy requests of the benchmark prompt
    at a time, `rounds` times, in this process -> (tokens generated, tokens/s; a first round warms it up). What
    `tinyllm serve` could make if answering over HTTP cost nothing."""
    import threading

    from ..serve.engine import Engine, Job
    from ..serve.text import TextStream

    engine = Engine(model, tok, max_batch=max(STREAMS), max_queue=4 * max(STREAMS))
    engine.start()
    done, made = threading.Semaphore(0), [0]

    def emit(ev):
        if ev[0] == "done":
            made[0] += ev[2]
            done.release()

    prompt = tok.encode(PROMPT)
    try:
        for k in range(rounds + 1):
            if k == 1:  # the first round warmed it up
                made[0], t0 = 0, time.perf_counter()
            engine.submit(
                [
                    Job(list(prompt), tokens, TextStream(tok), emit, temperature=0.0, ignore_eos=True)
                    for _ in range(streams)
                ]
            )
            for _ in range(streams):
                done.acquire()
        return made[0], made[0] / (time.perf_counter() - t0)
    finally:
        engine.stop()


def bench_serve(preset: str, tokens: int, rounds: int, threads: int, streams=STREAMS) -> list[dict]:
    from .provenance import git_commit, machine

    stamp = dict(
        date=datetime.date.today().isoformat(),
        commit=git_commit(),
        machine=machine(),
        threads=threads,
        preset=preset,
    )
    rows = []
    with tempfile.TemporaryDirectory() as d:
        ckpt = Path(d) / "bench.pt"
        model, tok, cfg = make_checkpoint(preset, ckpt)
        tokens = min(tokens, cfg.context_length - 20)
        for server, max_batch in (("tinyllm serve, batching", 64), ("tinyllm serve, batching off", 1)):
            proc, url = start_server(ckpt, max_batch, threads)
            try:
                for s in streams:
                    load = os.getloadavg()[0]
                    r = asyncio.run(drive(url, s, rounds if s > 1 else 4 * rounds, tokens))
                    rows.append({**stamp, "server": server, "streams": s, **r, "load": round(load, 2), "notes": ""})
                    print(format_row(rows[-1]), file=sys.stderr, flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        import torch

        torch.set_num_threads(threads)
        for s in streams:  # the scheduler without HTTP: the bound the HTTP path leaves room for
            n, tps = engine_in_process(model, tok, s, rounds, tokens)
            rows.append({**stamp, "server": "serve engine in process (no HTTP)", "streams": s, "requests": s * rounds,
                         "tokens": n, "tokens_per_s": tps, "load": round(os.getloadavg()[0], 2),
                         "notes": "greedy, the scheduler thread alone"})  # fmt: skip
            print(format_row(rows[-1]), file=sys.stderr, flush=True)
        llama = llama_cpp_decoder(ckpt, cfg, threads)
        if llama is None:
            print("llama.cpp: not measured (`import llama_cpp` fails here)", file=sys.stderr)
        single = single_stream_in_process(model, cfg, tokens, 3, threads, llama)
        load = round(os.getloadavg()[0], 2)
        names = {
            "ours": "generate_ids in process",
            "transformers": "transformers generate (GPT-2 same size)",
            "llama.cpp": "llama.cpp on the GGUF export (llama-cpp-python)",
        }
        for name, tps in ((names[k], v) for k, v in single.items()):
            rows.append({**stamp, "server": name, "streams": 1, "requests": 3, "tokens": 3 * tokens,
                         "tokens_per_s": tps, "load": load, "notes": "single stream, no HTTP, greedy, KV cache"})  # fmt: skip
            print(format_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def format_row(r: dict) -> str:
    lat = ""
    if "ttft_p50_ms" in r:
        lat = (
            f"  TTFT p50 {r['ttft_p50_ms']:.1f} / p99 {r['ttft_p99_ms']:.1f} ms"
            f"  ITL p50 {r['itl_p50_ms']:.1f} / p99 {r['itl_p99_ms']:.1f} ms"
        )
    return f"{r['preset']:5s} {r['server']:40s} streams {r['streams']:3d}  {r['tokens_per_s']:8.1f} tok/s{lat}"


def report(rows: list[dict]) -> str:
    lines = [format_row(r) for r in rows]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        by = {(r["server"], r["streams"]): r["tokens_per_s"] for r in rows if r["preset"] == preset}
        one, sixteen = by.get(("tinyllm serve, batching", 1)), by.get(("tinyllm serve, batching", 16))
        engine16 = by.get(("serve engine in process (no HTTP)", 16))
        ours, hf = by.get(("generate_ids in process", 1)), by.get(("transformers generate (GPT-2 same size)", 1))
        if one and sixteen:
            lines.append(f"{preset}: 16 streams / 1 stream = {sixteen / one:.2f}x (target >= 6x)")
        if one and engine16:
            lines.append(
                f"{preset}: the engine alone at 16 streams (no HTTP) / 1 stream over HTTP = {engine16 / one:.2f}x"
            )
        if ours and hf:
            lines.append(f"{preset}: single-stream decode, ours / transformers = {ours / hf:.2f}x (target >= 2x)")
        cpp = by.get(("llama.cpp on the GGUF export (llama-cpp-python)", 1))
        if ours and cpp:
            lines.append(f"{preset}: single-stream decode, ours / llama.cpp = {ours / cpp:.2f}x")
        if one and hf:
            lines.append(f"{preset}: single stream over HTTP / transformers in process = {one / hf:.2f}x")
    return "\n".join(lines)


def write_rows(rows: list[dict], out: str | Path) -> Path:
    from ..io import atomic_open

    path = Path(out)
    path = path / "serve.csv" if path.suffix != ".csv" else path
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    with atomic_open(path, "w") as f:  # append = old rows + new, through a temp file and a rename
        f.write(old)
        w = csv.DictWriter(
            f, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n"
        )  # LF, as the old rows are read
        if not old:
            w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()})
    return path
