"""encode_batch and encode_batch_flat on threads: the same ids as the reference, one text at a time.

The batch path reads each str's storage without the GIL (ASCII as UTF-8 in place; Latin-1, UCS-2
and UCS-4 strs are turned into UTF-8 by the worker), groups texts into blocks that threads take in
turn, and returns either one list per text or one flat buffer plus offsets. Each of those steps is
checked here on fresh random texts of every storage width, odd batch sizes and thread counts.
Speed (2 threads >= 1.8x one) is measured by benchmarks/bench_tokenizer.py --scaling, not asserted.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyllm.tokenizer import native_available
from tinyllm.tokenizer.reference import Tokenizer as ReferenceTokenizer

if not native_available():
    if os.environ.get("TINYLLM_REQUIRE_NATIVE") == "1":
        pytest.fail("TINYLLM_REQUIRE_NATIVE=1 but tinyllm._bpe is not built", pytrace=False)
    pytest.skip("the C++ core (tinyllm._bpe) is not built", allow_module_level=True)

from tinyllm.tokenizer.native import NativeTokenizer

# one sample per CPython str storage: ASCII, Latin-1 (width 1), UCS-2 (width 2), UCS-4 (width 4),
# lone surrogates (written the surrogatepass way), special tokens, long runs
PIECES = [
    "the lord said ",
    "don't ",
    "café déjà ",
    "ßüö ",
    "日本語のテキスト ",
    "жизнь ",
    "🙂👍🏽 ",
    "\U0001f1eb\U0001f1f7",
    "\ud800",
    "x\udfffy",
    "<EOS>",
    "<BOS> ",
    "12345 ",
    "\n\n",
    "\t  \r\n",
    " " * 70,
    "\x00",
    "\uffff",
]


@pytest.fixture(scope="module")
def pair():
    rng = random.Random(7)
    texts = ["".join(rng.choice(PIECES) for _ in range(200)) for _ in range(40)]
    merges = ReferenceTokenizer.train(texts, vocab_size=600, show_progress=False).merges
    return ReferenceTokenizer(merges), NativeTokenizer(merges)


def _random_docs(rng: random.Random, n: int) -> list[str]:
    """n documents, most short, some empty, one in ten with a single storage width only."""
    docs = []
    for _ in range(n):
        k = rng.choice([0, 1, 3, 10, 40])
        doc = "".join(rng.choice(PIECES) for _ in range(k))
        if rng.random() < 0.1:
            doc = rng.choice(["ascii only text", "é" * 5, "日本" * 3, "🙂" * 4])
        docs.append(doc)
    return docs


def _split(ids: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    return [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


@pytest.mark.parametrize("n_docs", [0, 1, 2, 7, 1025, 3001])  # around the 1,024-text block limit
@pytest.mark.parametrize("threads", [1, 2, 3, 16])
def test_batch_and_flat_equal_the_reference(pair, n_docs, threads):
    ref, nat = pair
    docs = _random_docs(random.Random(n_docs * 31 + threads), n_docs)
    want = [ref.encode(d) for d in docs]
    assert nat.encode_batch(docs, num_threads=threads) == want
    ids, offsets = nat.encode_batch_flat(docs, num_threads=threads)
    assert ids.dtype == np.uint32 and offsets.dtype == np.int64
    assert offsets.shape == (n_docs + 1,) and offsets[0] == 0 and offsets[-1] == len(ids)
    assert _split(ids, offsets) == want


def test_texts_bigger_than_a_block_and_many_blocks(pair):
    """Blocks are ~64 KB of text: one text of 200 KB is a block of its own, between many small ones."""
    ref, nat = pair
    rng = random.Random(3)
    big = "".join(rng.choice(PIECES) for _ in range(20000))
    docs = _random_docs(rng, 500) + [big] + _random_docs(rng, 500) + [big[:70000]]
    want = [ref.encode(d) for d in docs]
    assert nat.encode_batch(docs, num_threads=2) == want
    assert _split(*nat.encode_batch_flat(docs, num_threads=2)) == want


def test_allowed_special_none(pair):
    ref, nat = pair
    docs = ["<EOS> a <BOS>", "日本<PAD>", "plain"]
    want = [ref.encode(d, allowed_special="none") for d in docs]
    assert nat.encode_batch(docs, num_threads=2, allowed_special="none") == want
    assert _split(*nat.encode_batch_flat(docs, num_threads=2, allowed_special="none")) == want


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(
        st.one_of(st.text(max_size=50), st.lists(st.sampled_from(PIECES), max_size=8).map("".join)), max_size=30
    )
)
def test_random_batches(pair, docs):
    ref, nat = pair
    want = [ref.encode(d) for d in docs]
    assert nat.encode_batch(docs, num_threads=2) == want
    assert _split(*nat.encode_batch_flat(docs, num_threads=3)) == want


def test_flat_buffers_outlive_the_texts(pair):
    """The arrays own their memory: the texts (and their UTF-8) may go away."""
    _, nat = pair
    docs = [f"document {i} ünï 日本" for i in range(100)]
    ids, offsets = nat.encode_batch_flat(docs, num_threads=2)
    want = [nat.encode(d) for d in docs]
    del docs
    assert _split(ids, offsets) == want
