"""`tinyllm eval` and the trainer's val_bpb: bits per byte by hand, the fast chunked evaluation
against its reference, and eval reproducing the trainer's logged val loss on the same split."""

import contextlib
import json
import math

import numpy as np
import pytest
import torch

import tinyllm
from tinyllm.eval import evaluate_ids, evaluate_ids_ref, token_byte_lengths
from tinyllm.tokenizer import Tokenizer

TEXT = "In the beginning God created the heaven and the earth. <EOS> And the earth was without form, and void. é ☃"


@pytest.fixture(scope="module")
def tok(corpus):
    return Tokenizer.train([corpus], vocab_size=300)


def toy_model(vocab: int, context: int = 8, **kw) -> tinyllm.TinyLLM:
    cfg = tinyllm.ModelConfig(
        vocab_size=vocab, context_length=context, d_model=16, n_layers=2, n_heads=2, d_ff=32, **kw
    )
    return tinyllm.TinyLLM(cfg).eval()


def test_token_bytes_add_up_to_the_text(tok):
    """A special token stands for its name: the bytes of every id of a text are the text's UTF-8 bytes."""
    ids = tok.encode(TEXT)
    assert tok.eos_id in ids
    lengths = token_byte_lengths(tok)
    assert lengths[tok.eos_id] == len(b"<EOS>")
    assert int(lengths[ids].sum()) == len(TEXT.encode("utf-8"))


def test_bpb_equals_a_hand_computation(tok):
    """A model whose embedding (and so tied head) is zero predicts uniformly: each token costs ln V nats.
    Every token but the first is scored, so bpb = (n - 1) log2 V / (text bytes - first token's bytes)."""
    model = toy_model(tok.vocab_size, context=8)
    with torch.no_grad():
        model.tok_emb.weight.zero_()
    ids = tok.encode(TEXT)
    n, V = len(ids), tok.vocab_size
    n_bytes = len(TEXT.encode("utf-8")) - len(tok.decode_bytes([ids[0]]))
    r = evaluate_ids(model, ids, token_byte_lengths(tok), batch_size=3)
    assert r.tokens == n - 1 and r.bytes == n_bytes and r.chunks == math.ceil((n - 1) / 8)
    assert r.loss == pytest.approx(math.log(V), rel=1e-6)
    assert r.perplexity == pytest.approx(V, rel=1e-5)
    assert r.bpb == pytest.approx((n - 1) * math.log2(V) / n_bytes, rel=1e-6)


@pytest.mark.parametrize("n, context, batch", [(2, 8, 1), (9, 8, 1), (41, 8, 3), (97, 7, 16), (130, 13, 4)])
@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_batched_chunks_match_the_reference(tok, n, context, batch, pos_emb):
    """Fresh random weights and ids, stream lengths that leave a partial last chunk (the padded one)."""
    gen = torch.Generator().manual_seed(1000 * n + context)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = toy_model(tok.vocab_size, context=context, pos_emb=pos_emb, dropout=0.0)
    ids = torch.randint(0, tok.vocab_size, (n,), generator=gen).numpy()
    fast = evaluate_ids(model, ids, token_byte_lengths(tok), batch_size=batch)
    ref = evaluate_ids_ref(model, ids, tok)
    assert (
        (fast.tokens, fast.bytes, fast.chunks)
        == (ref.tokens, ref.bytes, ref.chunks)
        == (
            n - 1,
            int(token_byte_lengths(tok)[ids[1:]].sum()),
            math.ceil((n - 1) / context),
        )
    )
    assert fast.nats == pytest.approx(ref.nats, rel=2e-6)
    assert fast.bpb == pytest.approx(ref.bpb, rel=2e-6)


def test_trainer_bpb_is_nats_over_the_bytes_of_the_scored_targets(tok):
    """estimate_loss_bpb against a hand recomputation on the same batches: every target's -log p from the
    full logits in float64, over the decode_bytes of those targets (not of the inputs)."""
    import torch.nn.functional as F

    from tinyllm.data.tokens import TokenDataset
    from tinyllm.train.batches import derive_seed
    from tinyllm.train.evaluate import EVAL_STREAM, estimate_loss_bpb

    model = toy_model(tok.vocab_size, context=11, dropout=0.0)
    ds = TokenDataset(np.asarray(tok.encode(TEXT * 5)), 11)
    loss, bpb = estimate_loss_bpb(model, ds, 1, 3, 5, 42, "cpu", contextlib.nullcontext, tok)
    nats, n_bytes = 0.0, 0
    for i in range(3):
        x, y = ds.sample(torch.Generator().manual_seed(derive_seed(42, EVAL_STREAM, 1, i)), 5)
        with torch.no_grad():
            logits, _ = model(x)
        nats += float(F.cross_entropy(logits.double().flatten(0, 1), y.flatten(), reduction="sum"))
        n_bytes += sum(len(tok.decode_bytes([t])) for t in y.flatten().tolist())
    assert bpb == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)
    assert loss == pytest.approx(nats / (3 * 5 * 11), rel=1e-5)


def test_a_one_token_text_is_refused(tok):
    with pytest.raises(tinyllm.TinyLLMError, match="at least 2"):
        evaluate_ids(toy_model(tok.vocab_size), [5], token_byte_lengths(tok))


# ---- end to end: the trainer's val_bpb and `tinyllm eval` on its checkpoint ----------------------------
TOY = dict(
    d_model=32,
    n_layers=2,
    n_heads=2,
    d_ff=64,
    context_length=32,
    vocab_size=300,
    batch_size=8,
    max_iters=12,
    warmup_iters=2,
    max_lr=3e-3,
    eval_interval=6,
    eval_iters=3,
    checkpoint_interval=6,
    sample_tokens=0,
    seed=3,
    device="cpu",
    progress=False,
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, corpus):
    """The demo preset at toy size on 600 verses: -> out_dir."""
    from tinyllm.train import Trainer, resolve_run

    out = tmp_path_factory.mktemp("demo") / "out"
    Trainer(resolve_run(preset="demo", data=str(corpus), out_dir=str(out), **TOY)).run()
    return out


def test_metrics_rows_carry_val_bpb(demo_run):
    rows = [json.loads(x) for x in (demo_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 6, 12]
    for r in rows:
        # bytes per token of this tokenizer on Bible text is 2-4, so bpb sits between loss/ln2/4 and loss/ln2/1
        assert r["val_loss"] / math.log(2) / 5 < r["val_bpb"] < r["val_loss"] / math.log(2), r
    assert rows[-1]["val_bpb"] < rows[0]["val_bpb"]


def test_eval_reproduces_the_trainers_last_val_loss(demo_run, run_cli):
    """`tinyllm eval --split val --trainer_batches` draws the trainer's batches from the trainer's seed on
    the val split rebuilt from the data: the same val_loss and val_bpb as the last metrics.jsonl row."""
    last = json.loads((demo_run / "metrics.jsonl").read_text().splitlines()[-1])
    p = run_cli("eval", "--checkpoint", demo_run / "latest.pt", "--split", "val", "--trainer_batches", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["step"] == last["step"] == 12
    assert r["loss"] == pytest.approx(last["val_loss"], abs=1e-6)
    assert r["bpb"] == pytest.approx(last["val_bpb"], abs=1e-6)


def test_eval_on_the_whole_val_split(demo_run, corpus, run_cli):
    """The whole val split in chunks: every val token but the first scored, bytes = the split's text."""
    from tinyllm.data.corpus import load_documents, split_documents

    p = run_cli("eval", "--checkpoint", demo_run / "latest.pt", "--data", corpus, "--split", "val", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    _, val_docs = split_documents(load_documents(corpus))
    model, tok, _ = tinyllm.load_checkpoint(demo_run / "latest.pt")
    ids = [i for d in val_docs for i in tok.encode(d)]
    assert r["text_tokens"] == len(ids) and r["tokens"] == len(ids) - 1
    assert r["text_bytes"] == sum(len(d.encode()) for d in val_docs)
    assert r["bytes"] == r["text_bytes"] - len(tok.decode_bytes(ids[:1]))
    assert r["bpb"] == pytest.approx(r["nats"] / math.log(2) / r["bytes"])
    last = json.loads((demo_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(r["loss"] - last["val_loss"]) < 0.3  # another sample of the same split: close, not equal
    ref = evaluate_ids_ref(model, np.asarray(ids), tok)
    assert r["nats"] == pytest.approx(ref.nats, rel=1e-5)
    # --max_tokens scores only the first N; human output is two lines on stdout
    p = run_cli("eval", "--checkpoint", demo_run / "latest.pt", "--data", corpus, "--max_tokens", "100")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2 and "100 tokens" in lines[0] and "bits per byte" in lines[1], p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "nope.pt", "--data", "x.txt"], "nope.pt: no such checkpoint"),
        (["--data", "missing.txt"], "missing.txt: no such file or directory"),
        (["--max_tokens", "0"], "--max_tokens must be positive"),
        (["--batch_size", "0"], "--batch_size must be positive"),
        (["--data", "qa.json"], "qa.json: a Q&A file"),
    ],
)
def test_bad_input_is_one_line(demo_run, run_cli, tmp_path, args, message):
    (tmp_path / "qa.json").write_text('[{"question": "q", "answer": "a"}]')
    if "--checkpoint" not in args:
        args = ["--checkpoint", demo_run / "latest.pt", *args]
    p = run_cli("eval", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and message in p.stderr, p.stderr
    assert p.stdout == ""
