"""The continuous-batching engine against its slow, obvious reference: each request decoded alone
by generate_ids. In process (no HTTP): the scheduler thread, slots, per-row positions and sampling."""

from __future__ import annotations

import math
import random
import threading

import pytest
import torch
from serve_helpers import shared_qa_checkpoint

from tinyllm.generate import generate_ids, stream_text
from tinyllm.model import ModelConfig, TinyLLM
from tinyllm.serve.engine import Engine, Job, QueueFull
from tinyllm.serve.render import render_qa
from tinyllm.serve.text import TextStream
from tinyllm.train.checkpoint import load_checkpoint

CTX = 48


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    model, tok, _ = load_checkpoint(shared_qa_checkpoint(tmp_path_factory))
    tok.n_vocab = model.config.vocab_size  # the random models below share the trained one's vocabulary
    return tok


def random_model(tokenizer, pos_emb: str, attention: str = "sdpa", seed: int = 0) -> TinyLLM:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=tokenizer.n_vocab,
        context_length=CTX,
        d_model=32,
        n_layers=2,
        n_heads=2,
        d_ff=64,
        pos_emb=pos_emb,
        attention=attention,
        dropout=0.0,
    )
    model = TinyLLM(cfg).eval()
    with torch.no_grad():  # GPT-2's init (std 0.02) barely lets context move the argmax; make it matter
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(15.0)
    return model


class Collector:
    """Job.emit for in-process use: gathers the events of one job."""

    def __init__(self):
        self.text, self.events, self.done = "", [], threading.Event()

    def __call__(self, ev):
        self.events.append(ev)
        if ev[0] == "text":
            self.text += ev[1]
        else:
            self.done.set()


def run_jobs(model, tokenizer, specs: list[dict], max_batch: int, peak: int | None = None) -> list[Job]:
    """Submit every spec at once (they share decode steps: as many rows as the batch holds, or `peak`;
    0: not checked, for jobs that may end at prefill), wait for all -> the finished jobs."""
    engine = Engine(model, tokenizer, max_batch=max_batch, max_queue=len(specs))
    jobs = []
    for s in specs:
        c = Collector()
        jobs.append(Job(text=TextStream(tokenizer, s.pop("stop", None)), emit=c, **s))
        jobs[-1].collector = c
    engine.start()
    try:
        engine.submit(jobs)
        for j in jobs:
            assert j.collector.done.wait(60), "a job never finished"
    finally:
        engine.stop()
    if peak != 0:
        assert engine.peak_batch == (peak or min(max_batch, len(specs))), "the jobs did not share decode steps"
    assert len(engine.slots.free) == max_batch, "a slot stayed busy"
    return jobs


def mixed_specs(vocab: int, n: int, seed: int) -> list[dict]:
    """n requests of odd prompt lengths (1 token up to the context's end) and mixed settings."""
    rng = random.Random(seed)
    lengths = [1, 2, 3, 5, CTX - 3, CTX - 1] + [rng.randrange(1, CTX - 4) for _ in range(n - 6)]
    settings = [
        dict(temperature=0.0),
        dict(temperature=0.9, seed=11),
        dict(temperature=1.3, top_k=5, seed=12),
        dict(temperature=0.7, top_p=0.8, seed=13),
    ]
    specs = []
    for i, n_prompt in enumerate(lengths):
        prompt = [rng.randrange(4, vocab) for _ in range(n_prompt)]  # no special tokens
        specs.append(dict(prompt_ids=prompt, max_tokens=min(CTX - n_prompt, rng.randrange(1, 20)), **settings[i % 4]))
    return specs


def alone(model, spec: dict, eos_id: int) -> list[int]:
    return list(
        generate_ids(
            model,
            spec["prompt_ids"],
            spec["max_tokens"],
            spec["temperature"],
            spec.get("top_k"),
            spec.get("top_p"),
            eos_id=eos_id,
            seed=spec.get("seed"),
        )
    )


@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("attention", ["sdpa", "reference"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
def test_batched_answers_equal_unbatched(tokenizer, pos_emb, attention, packed):
    """12 requests in one batch (greedy and seeded sampling, prompts of 1 token to the context's
    end) give token for token what each gives alone through generate_ids."""
    model = random_model(tokenizer, pos_emb, attention, seed=random.randrange(10**6))
    model.packed_inference = packed  # both sides: what `tinyllm generate` and `tinyllm serve` run
    specs = mixed_specs(model.config.vocab_size, 12, seed=random.randrange(10**6))
    expected = [alone(model, s, tokenizer.eos_id) for s in specs]
    jobs = run_jobs(model, tokenizer, [dict(s) for s in specs], max_batch=8)  # 12 > 8: some wait, then join
    for s, j, want in zip(specs, jobs, expected):
        assert j.out_ids == want, f"prompt of {len(s['prompt_ids'])} tokens, {s}: batched != alone"
        assert j.collector.text == "".join(stream_text(tokenizer, iter(want)))


@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_forward_rows_matches_forward(tokenizer, pos_emb):
    """forward_rows (rows at different positions, each in its own slot) computes what forward does
    on each sequence alone, within float32 rounding: the math, not only self-consistency."""
    model = random_model(tokenizer, pos_emb)
    seqs = [torch.randint(4, model.config.vocab_size, (n,)).tolist() for n in (1, 7, 30, CTX - 1)]
    slots = model.new_slot_cache(len(seqs))
    views = [slots.view(slots.acquire()) for _ in seqs]
    for v, s in zip(views, seqs):
        model(torch.tensor([s[:-1]]), cache=v) if len(s) > 1 else None
    # a one-token sequence has nothing to prefill: its token is the row's input at position 0
    got = model.forward_rows([s[-1] for s in seqs], views)
    for row, s in zip(got, seqs):
        want = model(torch.tensor([s]))[0][0, -1]
        torch.testing.assert_close(row, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("linears", ["onednn", "mkl"])
def test_a_rows_logits_do_not_depend_on_the_others(tokenizer, linears, monkeypatch):
    """The same bits for a sequence decoded alone or beside 1, 2, 3 or 6 others, with the step's
    linears through oneDNN (model/packed_linear.py) or through F.linear (MKL: where oneDNN is not
    there). On MKL, without the row padding (ROW_QUANTUM = 1) this fails: 1-3 rows take other matmul
    kernels than 4+."""
    import tinyllm.model.packed_linear as PL

    if linears == "onednn" and not PL.available():
        pytest.skip("this torch has no oneDNN")
    model = random_model(tokenizer, "rope")
    model.packed_inference = linears == "onednn"
    prompt = torch.randint(4, model.config.vocab_size, (9,)).tolist()
    outs = []
    for others in (0, 1, 2, 3, 6):
        slots = model.new_slot_cache(others + 1)
        views = [slots.view(slots.acquire()) for _ in range(others + 1)]
        for k, v in enumerate(views):
            model(torch.tensor([prompt if k == 0 else prompt[: 3 + k]]), cache=v)
        outs.append(model.forward_rows([5] * (others + 1), views)[0])
    for o in outs[1:]:
        assert torch.equal(o, outs[0])


def test_queue_is_bounded(tokenizer):
    model = random_model(tokenizer, "learned")
    engine = Engine(model, tokenizer, max_batch=1, max_queue=2)  # not started: nothing leaves the queue
    job = lambda: Job(prompt_ids=[5], max_tokens=1, text=TextStream(tokenizer), emit=lambda ev: None)
    engine.submit([job(), job()])
    with pytest.raises(QueueFull):
        engine.submit([job()])


def test_cancelled_job_frees_its_slot(tokenizer):
    """A running job cancelled after its first token leaves its slot to the waiting one. The long job
    cannot end first: 1,000 tokens with ignore_eos on a 1M-parameter model are ~0.9 s of decoding
    (measured, torch path; the small model's 46 tokens could end before the cancel)."""
    torch.manual_seed(random.randrange(10**6))
    cfg = ModelConfig(vocab_size=tokenizer.n_vocab, context_length=1024, d_model=128, n_layers=4, n_heads=4,
                      d_ff=256, dropout=0.0)  # fmt: skip
    model = TinyLLM(cfg).eval()
    engine = Engine(model, tokenizer, max_batch=1, max_queue=4)
    first, second = Collector(), Collector()
    long = Job([5, 6], 1000, TextStream(tokenizer), emit=first, temperature=0.0, ignore_eos=True)
    short = Job(prompt_ids=[7], max_tokens=3, text=TextStream(tokenizer), emit=second, temperature=0.0)
    engine.start()
    try:
        engine.submit([long, short])
        while not any(ev[0] == "text" for ev in list(first.events)) and not first.done.is_set():
            pass
        engine.cancel([long])
        assert second.done.wait(30), "the waiting job never got the freed slot"
        assert second.events[-1][0] == "done" and len(short.out_ids) == 3
        assert first.events[-1] == ("done", "cancelled", long.n_out) and long.n_out < 1000
    finally:
        engine.stop()
    assert engine.slots.free == [0] and engine.cancelled == 1


def eos_model(tokenizer, p_eos: float, seed: int) -> TinyLLM:
    """A model whose next-token distribution is one fixed softmax, <EOS> drawn with probability p_eos:
    the final LayerNorm outputs a constant vector b (gain 0, bias b), so the logits are E b, E the tied
    embedding, and <EOS>'s row is set to c b with c |b|^2 = log(p_eos / (1 - p_eos)) + logsumexp of
    the other logits. p_eos = 0: <EOS>'s logit is -1e4 |b|^2, which no sampler can draw."""
    model = random_model(tokenizer, "learned", seed=seed)
    eos = tokenizer.eos_id
    with torch.no_grad():
        b = torch.randn(model.config.d_model)
        model.ln_f.weight.zero_()
        model.ln_f.bias.copy_(b)
        E = model.tok_emb.weight
        rest = torch.cat([E[:eos], E[eos + 1 :]]) @ b
        c = -1e4 if p_eos == 0 else (math.log(p_eos / (1 - p_eos)) + rest.logsumexp(0).item()) / b.dot(b).item()
        E[eos] = c * b
    return model


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
def test_ignore_eos_masks_its_own_rows_only(tokenizer, packed):
    """Jobs with and without ignore_eos in one batch, on a model that draws <EOS> one time in five:
    those without it are token for token what generate_ids gives alone (some end at <EOS> mid-batch);
    those with it run to max_tokens, token for token what generate_ids gives on the same model with
    <EOS>'s logit at -1e4 (the prompt's first token too: prefill)."""
    seed = random.randrange(10**6)
    model, never = eos_model(tokenizer, 0.2, seed), eos_model(tokenizer, 0.0, seed)
    for m in (model, never):
        m.packed_inference = packed
    masked = [dict(temperature=0.0), dict(temperature=1.0, seed=3), dict(temperature=1.5, top_k=50, seed=4)]
    plain = [dict(temperature=0.0)] + [dict(temperature=1.0, seed=10 + i) for i in range(8)]
    specs = [dict(prompt_ids=[5 + i, 9], max_tokens=20, ignore_eos=True, **kw) for i, kw in enumerate(masked)]
    specs += [dict(prompt_ids=[5 + i, 9], max_tokens=20, ignore_eos=False, **kw) for i, kw in enumerate(plain)]
    jobs = run_jobs(model, tokenizer, [dict(s) for s in specs], max_batch=len(specs), peak=0)
    eos = tokenizer.eos_id
    for s, j in zip(specs, jobs):
        want = alone(never if s["ignore_eos"] else model, s, eos)
        assert j.out_ids == want, s
        if s["ignore_eos"]:
            assert j.collector.events[-1] == ("done", "length", 20) and eos not in want, s
    stopped_mid_batch = [j for j in jobs if not j.ignore_eos and 0 < j.n_out < 20]
    assert stopped_mid_batch, "no job without ignore_eos ended at <EOS> in a decode step (p ~ 4e-6)"


class Bytes:
    """A tokenizer stand-in whose ids are raw bytes: to split characters at will."""

    eos_id = 256

    def decode_bytes(self, ids):
        return bytes(ids)


def feed_all(stream: TextStream, data: bytes) -> list[str]:
    pieces = [stream.feed(b) for b in data]
    if not stream.stopped:
        pieces.append(stream.finish())
    return [p for p in pieces if p]


def test_text_never_splits_a_character():
    text = "naïve 日本 🙂 ok"
    pieces = feed_all(TextStream(Bytes()), text.encode())
    assert "".join(pieces) == text
    for p in pieces:
        p.encode("utf-8")  # a lone surrogate or a replacement character would show a split
        assert "\ufffd" not in p


@pytest.mark.parametrize(
    "text, stops, want, stopped",
    [
        ("Amen. And the LORD said", ["And the"], "Amen. ", True),
        ("Amen. And so", ["And the"], "Amen. And so", False),  # a prefix that never completes is released
        ("abc", ["c", "bc"], "a", True),  # the earliest stop wins
        ("x 日本 y", ["本"], "x 日", True),
        ("no stop", [], "no stop", False),
    ],
)
def test_stop_strings(text, stops, want, stopped):
    s = TextStream(Bytes(), stops)
    pieces = feed_all(s, text.encode())
    assert "".join(pieces) == want and s.stopped == stopped
    for k in range(1, len(pieces) + 1):  # nothing sent could still become a stop string
        assert not any(stop in "".join(pieces[:k]) for stop in stops)


def test_trim_matches_trim_stream():
    from tinyllm.generate.answer import trim_stream

    for text in ["  Hello world  ", " a\n b \n", "   ", "x", " two  spaces  inside "]:
        got = "".join(feed_all(TextStream(Bytes(), trim=True), text.encode()))
        assert got == "".join(trim_stream(iter(text))), repr(text)


def test_chat_rendering_uses_the_qa_template():
    msgs = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "I am tinyllm."},
        {"role": "user", "content": " What can you do? "},
    ]
    assert render_qa(msgs) == (
        "<BOS> Question: Who are you?\nAnswer: I am tinyllm. <EOS><BOS> Question: What can you do?\nAnswer:"
    )


def test_the_served_socket_turns_nagle_off():
    """uvicorn serves the socket serve.server.bind makes; asyncio turns Nagle off on the connections it
    accepts only when that socket says TCP. It once did not (proto 0), and every response after the first
    on a kept-alive connection waited 40 ms for the client's delayed ACK before its body went out."""
    import asyncio
    import socket

    from tinyllm.serve.server import bind

    async def accepted_nodelay() -> int:
        got = asyncio.get_running_loop().create_future()

        def on_connect(reader, writer):
            got.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock = bind("127.0.0.1", 0)
        server = await asyncio.start_server(on_connect, sock=sock)
        _, w = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(got, 10)
        finally:
            w.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0
