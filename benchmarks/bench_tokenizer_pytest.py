"""pytest-benchmark suite for the tokenizer (small inputs: seconds, not minutes).

    pytest benchmarks/bench_tokenizer_pytest.py --benchmark-group-by=group

Groups compare alternatives measured in the same run: training the Bible (4.4 MB) to
4096 tokens with the C++ core and the reference; encoding 1 MB with ours and tiktoken
(an Encoding built from our ranks: the same vocabulary and the same ids).
The full-size comparison (100 MB corpus, HF tokenizers, rustbpe, sentencepiece) is
benchmarks/bench_tokenizer.py.
"""

from __future__ import annotations

import pytest

from tinyllm.tokenizer import native_available
from tinyllm.tokenizer.reference import Tokenizer as ReferenceTokenizer

pytest.importorskip("pytest_benchmark")
native = pytest.mark.skipif(not native_available(), reason="the C++ core is not built")


@pytest.fixture(scope="module")
def bible():
    from pybible.Bible import Bible

    return list(Bible)


@pytest.fixture(scope="module")
def tok(bible):
    from tinyllm.tokenizer import Tokenizer

    return Tokenizer.train(bible, vocab_size=4096, show_progress=False)


@pytest.fixture(scope="module")
def text_1mb(bible):
    out = []
    for verse in bible[::7]:
        out.append(verse)
        if sum(map(len, out)) > 1_000_000:
            break
    return "\n".join(out)


@pytest.mark.benchmark(group="train bible 4096")
@native
def test_train_native(benchmark, bible):
    from tinyllm.tokenizer.native import NativeTokenizer

    tok = benchmark(NativeTokenizer.train, bible, vocab_size=4096, num_threads=2, show_progress=False)
    assert tok.vocab_size == 4096


@pytest.mark.benchmark(group="train bible 4096")
def test_train_reference(benchmark, bible):
    tok = benchmark.pedantic(
        ReferenceTokenizer.train,
        args=(bible,),
        kwargs=dict(vocab_size=4096, show_progress=False),
        rounds=1,
        iterations=1,
    )
    assert tok.vocab_size == 4096


@pytest.mark.benchmark(group="encode 1MB one string")
def test_encode_ours(benchmark, tok, text_1mb):
    ids = benchmark(tok.encode, text_1mb)
    assert tok.decode(ids) == text_1mb


@pytest.mark.benchmark(group="encode 1MB one string")
def test_encode_tiktoken(benchmark, tok, text_1mb):
    pytest.importorskip("tiktoken")
    enc = tok.to_tiktoken()
    ids = benchmark(enc.encode_ordinary, text_1mb)
    assert ids == tok.encode(text_1mb, allowed_special="none")


@pytest.mark.benchmark(group="encode 1MB batch 2 threads")
def test_encode_batch_ours(benchmark, tok, text_1mb):
    docs = text_1mb.split("\n")
    benchmark(tok.encode_batch, docs, num_threads=2)


@pytest.mark.benchmark(group="encode 1MB batch 2 threads")
def test_encode_batch_tiktoken(benchmark, tok, text_1mb):
    pytest.importorskip("tiktoken")
    enc = tok.to_tiktoken()
    benchmark(enc.encode_ordinary_batch, text_1mb.split("\n"), num_threads=2)
