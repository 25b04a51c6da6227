"""`tinyllm serve` through the official openai client (sync and async) against the real process on
127.0.0.1: completions and chat, streaming and not, n > 1, stop, seed, usage, every error shape,
batching equivalence under concurrency, a client that disconnects mid-stream, SIGTERM -> exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest
from serve_helpers import ServeProcess, long_answer_checkpoint, shared_qa_checkpoint

from tinyllm.generate import answer, generate, generate_ids
from tinyllm.train.checkpoint import load_checkpoint

MODEL = "best.pt"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return shared_qa_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def local(ckpt):
    """The same model in this process: the unbatched reference answers."""
    model, tok, info = load_checkpoint(ckpt)
    assert info["is_qa"]
    return model, tok


@pytest.fixture(scope="module")
def server(ckpt):
    s = ServeProcess(ckpt, "--max_batch", "8", "--max_queue", "64")
    yield s
    assert s.stop() == 0, "SIGTERM must end the server with exit status 0"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)


QUESTIONS = [
    "What is tinyllm?",
    "Who are you?",
    "How do I train a model?",
    "What is a tokenizer?",
    "hi",
    "What does the demo preset do and how long does it take to train on a laptop?",
    "Which attention backends are there?",
    "What is rope?",
    "How do I fine-tune on my own questions and answers?",
    "What is BPE?",
]


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    h = server.health()
    assert h["status"] == "ok" and h["free_slots"] == 8
    assert h["threads"] == 1, "OMP_NUM_THREADS=1 (set by the test) is the user's: kept"


def test_decode_threads_leave_a_core_for_http_unless_told(ckpt):
    cores = len(os.sched_getaffinity(0))
    for args, threads, want in (((), None, max(1, cores - 1)), (("--threads", "3"), 1, 3)):
        s = ServeProcess(ckpt, *args, threads=threads)
        try:
            assert s.health()["threads"] == want, (args, threads)
        finally:
            assert s.stop() == 0
    bad = subprocess.run(
        [sys.executable, "-m", "tinyllm", "serve", "--checkpoint", str(ckpt), "--threads", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --threads must be a positive integer, got 0"


def test_chat_greedy_equals_generate(client, local):
    model, tok = local
    for q in QUESTIONS[:3]:
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=40
        )
        assert r.choices[0].message.content == answer(model, tok, q, max_tokens=40)
        assert r.choices[0].finish_reason in ("stop", "length")
        n_prompt = len(tok.encode(f"<BOS> Question: {q}\nAnswer:"))
        assert r.usage.prompt_tokens == n_prompt
        assert r.usage.total_tokens == n_prompt + r.usage.completion_tokens


def test_some_answer_ends_at_eos(client):
    reasons = {
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=60
        )
        .choices[0]
        .finish_reason
        for q in QUESTIONS
    }
    assert "stop" in reasons, "the trained model should end some answer at <EOS>"


def test_ignore_eos_runs_every_answer_to_max_tokens(client):
    """ignore_eos (llama-server's and vLLM's extension, for fixed-length benchmark traffic): the
    greedy answers that ended at <EOS> go on to max_tokens from the same first tokens."""
    ask = dict(model=MODEL, temperature=0, max_tokens=60)
    for q in QUESTIONS:
        messages = [{"role": "user", "content": q}]
        plain = client.chat.completions.create(messages=messages, **ask)
        long = client.chat.completions.create(messages=messages, extra_body={"ignore_eos": True}, **ask)
        assert long.choices[0].finish_reason == "length" and long.usage.completion_tokens == 60, q
        if plain.choices[0].finish_reason == "stop":
            assert long.choices[0].message.content.startswith(plain.choices[0].message.content.rstrip()), q


def test_completion_list_of_prompts_n_and_usage(client, local):
    model, tok = local
    prompts = ["The model", "A tokenizer is"]
    r = client.completions.create(model=MODEL, prompt=prompts, max_tokens=7, n=2, temperature=0)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    for i, p in enumerate(prompts):
        want = generate(model, tok, p, max_tokens=7, temperature=0.0)
        assert r.choices[2 * i].text == want and r.choices[2 * i + 1].text == want  # greedy: n copies
    assert r.usage.prompt_tokens == sum(len(tok.encode(p)) for p in prompts)
    n_ids = [len(list(generate_ids(model, tok.encode(p), 7, temperature=0.0, eos_id=tok.eos_id))) for p in prompts]
    assert r.usage.completion_tokens == 2 * sum(n_ids)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_chat_equals_non_streaming(client):
    q = [{"role": "user", "content": QUESTIONS[0]}]
    full = client.chat.completions.create(model=MODEL, messages=q, temperature=0, max_tokens=30)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=q, temperature=0, max_tokens=30, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_streaming_completion_ends_with_done(server):
    body = {"model": MODEL, "prompt": "The", "max_tokens": 5, "stream": True, "temperature": 0}
    with httpx.stream("POST", server.api + "/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_stop_string_is_cut_and_not_included(client):
    for question in QUESTIONS:  # one whose greedy answer has three words or more
        q = [{"role": "user", "content": question}]
        full = client.chat.completions.create(model=MODEL, messages=q, temperature=0, max_tokens=40).choices[0]
        words = full.message.content.split()
        if len(words) >= 3:
            break
    assert len(words) >= 3, full.message.content
    stop = " " + words[2]
    r = client.chat.completions.create(model=MODEL, messages=q, temperature=0, max_tokens=40, stop=[stop, "zzzz"])
    head = full.message.content[: full.message.content.index(stop)].rstrip()
    assert r.choices[0].message.content == head and r.choices[0].finish_reason == "stop"


def test_seed_reproducible_and_n_choices_differ(client):
    kw = dict(model=MODEL, prompt="The", max_tokens=12, temperature=1.2, seed=1234)
    a, b = client.completions.create(**kw, n=3), client.completions.create(**kw, n=3)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert len({c.text for c in a.choices}) > 1, "n choices should use different generators"
    other = client.completions.create(**{**kw, "seed": 99}).choices[0].text
    assert other != a.choices[0].text


def test_seeded_sampling_matches_generate(client, local):
    model, tok = local
    # top_k is our extension: the openai client passes it through extra_body
    r = client.completions.create(
        model=MODEL, prompt="In the", max_tokens=15, temperature=0.9, seed=7, extra_body={"top_k": 20}
    )
    assert r.choices[0].text == generate(model, tok, "In the", max_tokens=15, temperature=0.9, top_k=20, seed=7)


def test_concurrent_requests_equal_their_unbatched_answers(server, local):
    """12 requests at once through AsyncOpenAI (prompt lengths 2-30 tokens, greedy and seeded sampling,
    chat and completions): each equals what generate / answer give for it alone in this process."""
    model, tok = local
    cases = []
    for i, q in enumerate(QUESTIONS + ["The LORD", "And it came to pass"]):
        settings = [dict(temperature=0.0), dict(temperature=0.8, seed=i), dict(temperature=1.0, top_p=0.9, seed=i)][
            i % 3
        ]
        cases.append((q, i % 2 == 0, settings))

    def expected(q, chat, s):
        kw = dict(max_tokens=25, temperature=s["temperature"], top_p=s.get("top_p"), seed=s.get("seed"))
        return answer(model, tok, q, **kw) if chat else generate(model, tok, q, **kw)

    async def ask(c, q, chat, s):
        if chat:
            r = await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": q}], max_tokens=25, **s
            )
            return r.choices[0].message.content
        r = await c.completions.create(model=MODEL, prompt=q, max_tokens=25, **s)
        return r.choices[0].text

    async def main():
        async with openai.AsyncOpenAI(base_url=server.api, api_key="unused", max_retries=0) as c:
            return await asyncio.gather(*(ask(c, *case) for case in cases))

    before = server.health()["peak_batch"]
    got = asyncio.run(main())
    for (q, chat, s), g in zip(cases, got):
        assert g == expected(q, chat, s), (q, chat, s)
    assert server.health()["peak_batch"] >= max(before, 4), "the requests were not batched together"


def test_async_streaming(server):
    async def main():
        async with openai.AsyncOpenAI(base_url=server.api, api_key="unused", max_retries=0) as c:
            stream = await c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Who are you?"}],
                temperature=0,
                max_tokens=10,
                stream=True,
            )
            return "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])

    sync = openai.OpenAI(base_url=server.api, api_key="unused").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Who are you?"}], temperature=0, max_tokens=10
    )
    assert asyncio.run(main()) == sync.choices[0].message.content


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "body, status, param",
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        ({"messages": CHAT["messages"]}, 400, "model"),
        ({"model": MODEL}, 400, "messages"),
        ({**CHAT, "messages": "hi"}, 400, "messages"),
        ({**CHAT, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
        ({**CHAT, "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
        ({**CHAT, "temperature": -1}, 400, "temperature"),
        ({**CHAT, "temperature": "hot"}, 400, "temperature"),
        ({**CHAT, "top_p": 1.5}, 400, "top_p"),
        ({**CHAT, "top_p": 0}, 400, "top_p"),
        ({**CHAT, "top_k": -2}, 400, "top_k"),
        ({**CHAT, "max_tokens": 0}, 400, "max_tokens"),
        ({**CHAT, "max_tokens": 2.5}, 400, "max_tokens"),
        ({**CHAT, "max_tokens": 100000}, 400, "max_tokens"),
        ({**CHAT, "messages": [{"role": "user", "content": "word " * 400}]}, 400, "messages"),
        ({**CHAT, "n": 0}, 400, "n"),
        ({**CHAT, "seed": -1}, 400, "seed"),
        ({**CHAT, "stop": 3}, 400, "stop"),
        ({**CHAT, "stream": "yes"}, 400, "stream"),
        ({**CHAT, "ignore_eos": 1}, 400, "ignore_eos"),
        ({**CHAT, "model": "gpt-4"}, 404, "model"),
    ],
)
def test_errors_have_openai_shape(server, body, status, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(server.api + "/chat/completions", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param
    if param:
        assert param.split("[")[0] in err["message"]


def test_errors_through_the_openai_client(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=10**6)
    assert e.value.status_code == 400 and "max_tokens" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", temperature=-0.5)


def test_unknown_fields_and_user_are_ignored(server):
    r = httpx.post(server.api + "/chat/completions", json={**CHAT, "user": "me", "frobnicate": 1, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"


def test_curl_line_from_the_readme(server):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    cmd = (
        f"curl -s {server.url}/v1/chat/completions -H 'Content-Type: application/json' "
        f'-d \'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "Who are you?"}}], '
        f'"temperature": 0, "max_tokens": 20}}\''
    )
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out)["choices"][0]["message"]["content"]


def test_disconnect_mid_stream_frees_the_slot(ckpt, tmp_path_factory):
    """One slot: a client reads two chunks of a long answer and hangs up; the next request must get
    the slot and be answered, and the server keeps serving. The answer cannot end first: 16 choices
    of 1,000 tokens with ignore_eos take the one slot in turn, ~4 s of decoding (a 0.05M model's
    ~1,000 tokens once did end before the hang-up reached the server, and nothing was left to cancel)."""
    long = long_answer_checkpoint(tmp_path_factory, ckpt)
    s = ServeProcess(long, "--max_batch", "1", "--max_queue", "16")
    try:
        body = {"model": "long.pt", "prompt": "The", "max_tokens": 1000, "stream": True, "temperature": 0, "n": 16,
                "ignore_eos": True}  # fmt: skip
        with httpx.stream("POST", s.api + "/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            got = [next(lines) for _ in range(3)]
            assert got[0].startswith("data: ")
            assert s.health()["free_slots"] == 0
        h = s.wait_idle()
        assert h["free_slots"] == 1 and h["running"] == 0 and h["waiting"] == 0
        assert h["cancelled"] >= 1, "the abandoned stream ran on instead of leaving its slot"
        r = httpx.post(s.api + "/completions", json={**body, "stream": False, "max_tokens": 3, "n": 1}, timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        assert s.health()["free_slots"] == 1
    finally:
        assert s.stop() == 0


LONG = {"model": "long.pt", "prompt": "The", "max_tokens": 1000, "temperature": 0, "ignore_eos": True}
"""~0.3 s of decoding on long_answer_checkpoint: far longer than any request takes to arrive."""


def test_full_queue_is_429_with_retry_after(ckpt, tmp_path_factory):
    s = ServeProcess(long_answer_checkpoint(tmp_path_factory, ckpt), "--max_batch", "1", "--max_queue", "1")
    try:

        async def main():
            async with httpx.AsyncClient(timeout=60) as c:
                return await asyncio.gather(*(c.post(s.api + "/completions", json=LONG) for _ in range(12)))

        rs = asyncio.run(main())
        codes = sorted(r.status_code for r in rs)
        # one slot and a queue of one: whoever is admitted is answered, the rest are told to retry (2 get
        # in, or 3 if the first has left the queue for the slot before the last arrives)
        assert set(codes) == {200, 429} and codes.count(429) >= 9, codes
        assert all(r.json()["usage"]["completion_tokens"] == 1000 for r in rs if r.status_code == 200)
        busy = next(r for r in rs if r.status_code == 429)
        assert busy.headers["Retry-After"] == "1" and busy.json()["error"]["code"] == "queue_full"
        assert s.wait_idle()["free_slots"] == 1
    finally:
        assert s.stop() == 0


def test_sigterm_lets_an_in_flight_request_finish(ckpt, tmp_path_factory):
    """SIGTERM after the first chunk of a ~0.3 s answer: the answer still comes whole, then exit 0."""
    s = ServeProcess(long_answer_checkpoint(tmp_path_factory, ckpt), "--max_batch", "2")
    body = {**LONG, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", s.api + "/completions", json=body, timeout=30) as r:
        lines = r.iter_lines()
        next(lines)
        s.proc.send_signal(15)
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    assert json.loads(rest[-2][6:])["usage"]["completion_tokens"] == 1000
    finish = [c["choices"][0]["finish_reason"] for c in map(json.loads, (x[6:] for x in rest[:-1])) if c["choices"]]
    assert finish[-1] == "length"
    assert s.stop() == 0


def test_more_sigterms_while_stopping_still_exit_0(ckpt):
    """A service manager may signal again while the server is already stopping: every SIGTERM until
    the process is gone, 5 ms apart. Once uvicorn has stopped it puts back the handlers it found, and
    one of these landing after that must not kill the process (-15) in the last steps of its exit."""
    s = ServeProcess(ckpt)
    s.health()
    while s.proc.poll() is None:
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.005)
    assert s.stop() == 0, s.proc.returncode


def test_sigterm_just_after_the_serving_line_stops_the_server(ckpt):
    """The "serving ..." line comes just before uvicorn takes the signals: a SIGTERM sent on reading it
    (before or after uvicorn's handlers) stops the server, exit 0, instead of being lost."""
    cmd = [sys.executable, "-m", "tinyllm", "serve", "--checkpoint", str(ckpt), "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "serving" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.communicate()
