"""A bounded load test on loopback: 1,000 requests from 32 concurrent clients, mixed streaming and
non-streaming, 5% malformed. Every valid request gets its correct (greedy, precomputed) answer, every
malformed one a 4xx, nothing a 5xx, and the server's memory after the second half is within 10% of
after the first. It stops by itself: a fixed list of requests, no duration."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest
from serve_helpers import ServeProcess, shared_qa_checkpoint

from tinyllm.generate import answer, generate
from tinyllm.train.checkpoint import load_checkpoint

N_REQUESTS, CLIENTS, MALFORMED = 1000, 32, 0.05
PROMPTS = ["The", "What is tinyllm?", "Who are you?", "A", "How do I train a model on my own text?", "hi"]
MODEL = "best.pt"
BAD_BODIES = [
    b"{oops",
    json.dumps({"model": MODEL}).encode(),
    json.dumps({"model": MODEL, "prompt": "x", "temperature": -3}).encode(),
    json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 10**6}).encode(),
    json.dumps({"model": "other", "prompt": "x"}).encode(),
    json.dumps({"model": MODEL, "messages": [{"role": "user"}]}).encode(),
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return shared_qa_checkpoint(tmp_path_factory)


def plan(rng: random.Random) -> list[dict]:
    reqs = []
    for _ in range(N_REQUESTS):
        if rng.random() < MALFORMED:
            reqs.append({"bad": rng.choice(BAD_BODIES), "chat": rng.random() < 0.5})
        else:
            reqs.append(
                {
                    "prompt": rng.choice(PROMPTS),
                    "chat": rng.random() < 0.5,
                    "stream": rng.random() < 0.5,
                    "n": rng.randint(1, 8),
                }
            )
    return reqs


async def send(c: httpx.AsyncClient, api: str, r: dict) -> tuple[int, str | None]:
    path = api + ("/chat/completions" if r["chat"] else "/completions")
    if "bad" in r:
        resp = await c.post(path, content=r["bad"], headers={"Content-Type": "application/json"})
        return resp.status_code, None
    body = {"model": MODEL, "max_tokens": r["n"], "temperature": 0, "stream": r["stream"]}
    body.update({"messages": [{"role": "user", "content": r["prompt"]}]} if r["chat"] else {"prompt": r["prompt"]})
    if not r["stream"]:
        resp = await c.post(path, json=body)
        if resp.status_code != 200:
            return resp.status_code, resp.text
        ch = resp.json()["choices"][0]
        return 200, ch["message"]["content"] if r["chat"] else ch["text"]
    text = ""
    async with c.stream("POST", path, json=body) as resp:
        if resp.status_code != 200:
            return resp.status_code, (await resp.aread()).decode()
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                ch = json.loads(line[6:])["choices"]
                if ch:
                    text += (ch[0]["delta"].get("content") or "") if r["chat"] else ch[0]["text"]
    return 200, text


async def run_half(api: str, reqs: list[dict]) -> list[tuple[int, str | None]]:
    results: list = [None] * len(reqs)
    todo = iter(range(len(reqs)))

    async def client(c):
        for i in todo:  # 32 clients share one iterator: each takes the next request when free
            results[i] = await send(c, api, reqs[i])

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        await asyncio.gather(*(client(c) for _ in range(CLIENTS)))
    return results


def test_thousand_requests_32_clients(ckpt):
    model, tok, _ = load_checkpoint(ckpt)
    expected = {}
    for p in PROMPTS:
        for n in range(1, 9):
            expected[(p, True, n)] = answer(model, tok, p, max_tokens=n)
            expected[(p, False, n)] = generate(model, tok, p, max_tokens=n, temperature=0.0)
    reqs = plan(random.Random(13))
    s = ServeProcess(ckpt, "--max_batch", "32", "--max_queue", "256")
    try:
        first = asyncio.run(run_half(s.api, reqs[: N_REQUESTS // 2]))
        rss_first = s.rss_kb()
        second = asyncio.run(run_half(s.api, reqs[N_REQUESTS // 2 :]))
        rss_second = s.rss_kb()
        for r, (status, text) in zip(reqs, first + second):
            assert status < 500, (r, status, text)
            if "bad" in r:
                assert 400 <= status < 500, (r, status)
            else:
                assert status == 200 and text == expected[(r["prompt"], r["chat"], r["n"])], (r, status, text)
        assert sum("bad" in r for r in reqs) >= 30
        assert abs(rss_second - rss_first) <= 0.10 * rss_first, (rss_first, rss_second)
        h = s.wait_idle()
        assert h["free_slots"] == 32 and h["peak_batch"] > 1
    finally:
        assert s.stop() == 0
