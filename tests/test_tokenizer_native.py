"""The C++ core against the Python reference (and the `regex` module) on random input.

Skips cleanly when tinyllm._bpe is not built; fails when TINYLLM_REQUIRE_NATIVE=1.
"""

from __future__ import annotations

import os
import random

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Texts, native_available
from tinyllm.tokenizer.patterns import PATTERNS
from tinyllm.tokenizer.reference import Tokenizer as ReferenceTokenizer
from tinyllm.tokenizer.reference import count_pretokens, to_utf8

if not native_available():
    if os.environ.get("TINYLLM_REQUIRE_NATIVE") == "1":
        pytest.fail("TINYLLM_REQUIRE_NATIVE=1 but tinyllm._bpe is not built", pytrace=False)
    pytest.skip("the C++ core (tinyllm._bpe) is not built", allow_module_level=True)

from tinyllm import _bpe
from tinyllm.tokenizer.native import NativeTokenizer

# Characters where the split patterns are delicate: contraction letters in both cases
# (and U+017F, which matches 's' case-insensitively), every \s flavour, digits from
# several scripts, combining marks (not letters), ZWJ emoji, CJK, specials' brackets.
TRICKY = list("aZsStTdDmMlLvVeErR'’ 0123456789.,;:!?-_()<>/\\\"#\t\n\r\x0b\x0c") + [
    "\u017f",
    "\u00a0",
    "\u1680",
    "\u2000",
    "\u2028",
    "\u2029",
    "\u202f",
    "\u3000",
    "\x85",
    "\x1c",
    "é",
    "ß",
    "ǅ",
    "中",
    "文",
    "ア",
    "한",
    "ж",
    "ω",
    "א",
    "ع",
    "क",
    "ि",
    "\u0301",
    "\u200d",
    "٣",
    "²",
    "Ⅻ",
    "½",
    "😀",
    "👍",
    "🏽",
    "\U0001f1eb",
    "\ud800",
    "\udfff",
    "\ufffd",
    "\x00",
    "\uffff",
    "<EOS>",
    "<BOS>",
    "<PAD",
    "UNK>",
    "'s",
    "'LL",
    "'Ve",
    "\r\n",
    "  ",
    "\n\n",
    "123456",
]
tricky_text = st.lists(st.one_of(st.sampled_from(TRICKY), st.characters()), max_size=40).map("".join)
any_text = st.one_of(tricky_text, st.text(max_size=60))
HYP = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def merges():
    """A 1500-token vocab (reference-trained) over English, code and other scripts."""
    from pybible.Bible import Bible

    texts = list(Bible)[:6000] + [_multilingual(seed) for seed in range(30)]
    return ReferenceTokenizer.train(texts, vocab_size=1500, show_progress=False).merges


@pytest.fixture(scope="module")
def pair(merges):
    return ReferenceTokenizer(merges, "gpt4"), NativeTokenizer(merges, "gpt4")


@pytest.fixture(scope="module")
def pair_gpt2(merges):
    return ReferenceTokenizer(merges, "gpt2"), NativeTokenizer(merges, "gpt2")


def _multilingual(seed: int, words: int = 400) -> str:
    """Pseudo-text in several scripts, with digits, punctuation, marks and emoji."""
    import random

    rng = random.Random(seed)
    ranges = [
        (0x430, 0x44F),
        (0x3B1, 0x3C9),
        (0x627, 0x64A),
        (0x5D0, 0x5EA),
        (0x915, 0x94C),
        (0xE01, 0xE2E),
        (0xAC00, 0xAD00),
        (0x4E00, 0x4F00),
        (0x3041, 0x3096),
        (0x1F600, 0x1F64F),
        (0x61, 0x7A),
        (0x660, 0x669),
    ]
    out = []
    for _ in range(words):
        lo, hi = rng.choice(ranges)
        out.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 7))))
        out.append(rng.choice([" ", " ", " ", ", ", ". ", "\n", "  ", "' ", "’s ", " 1234 ", "!\n\n"]))
    return "".join(out)


# ---- building blocks ---------------------------------------------------------------------
def test_unicode_tables_match_installed_regex():
    """The generated table equals what the installed `regex` says, for every code point."""
    classes = _bpe.char_classes()
    letter, number, space = regex.compile(r"\p{L}"), regex.compile(r"\p{N}"), regex.compile(r"\s")
    wrong = []
    for cp in range(0x110000):
        ch = chr(cp)
        want = 1 if letter.match(ch) else 2 if number.match(ch) else 3 if space.match(ch) else 0
        if classes[cp] != want:
            wrong.append(cp)
    assert not wrong, (
        f"{len(wrong)} code points (first U+{wrong[0]:04X}) differ between csrc/unicode_tables.h "
        f"(regex {_bpe.UNICODE_REGEX_VERSION}) and the installed regex {regex.__version__}: "
        "run `python csrc/gen_unicode_tables.py` and rebuild"
    )
    folds = {chr(cp) for cp in range(0x80, 0x110000) if regex.fullmatch(r"(?i:[sdmtlver])", chr(cp))}
    assert {ch for ch in folds if _bpe.contraction_fold(ord(ch)) != "\0"} == folds


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@HYP
@given(text=any_text)
def test_pretokenize_matches_regex(pattern, text):
    want = [to_utf8(p) for p in regex.findall(PATTERNS[pattern], text)]
    assert _bpe.pretokenize(text, pattern) == want


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@HYP
@given(data=st.binary(max_size=60))
def test_pretokenize_matches_regex_on_replaced_bytes(pattern, data):
    text = data.decode("utf-8", "replace")
    assert _bpe.pretokenize(text, pattern) == [to_utf8(p) for p in regex.findall(PATTERNS[pattern], text)]


utf8ish = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"\xc3",
                b"\xa9",
                b"\xe2\x82",
                b"\xac",
                b"\xf0\x9f",
                b"\x98\x80",
                b"\xed\xa0\x80",
                b"\xc0\xaf",
                b"\xf4\x90",
                b"\xe0\x80",
                b"\xff",
                b"a",
                b" ",
                b"\x80",
            ]
        ),
        st.binary(max_size=3),
    ),
    max_size=30,
).map(b"".join)


@HYP
@given(data=utf8ish, block=st.integers(0, 5))
def test_repair_utf8_matches_python_replace(data, block):
    out, replaced = _bpe.repair_utf8(data, block)
    assert out == data.decode("utf-8", "replace").encode()
    assert replaced == _count_replacements(data)  # one per maximal invalid subpart, as in Python


def _count_replacements(data: bytes) -> int:
    """How often Python's decoder calls an error handler on data (= U+FFFDs with "replace")."""
    import codecs

    count = 0

    def handler(err):
        nonlocal count
        count += 1
        return "\ufffd", err.end

    codecs.register_error("test.count_replacements", handler)
    data.decode("utf-8", "test.count_replacements")
    return count


# ---- encoding --------------------------------------------------------------------------
@HYP
@given(text=any_text)
def test_encode_matches_reference(pair, text):
    ref, nat = pair
    ids = ref.encode(text)
    assert nat.encode(text) == ids
    assert nat.encode(text, allowed_special="none") == ref.encode(text, allowed_special="none")
    assert nat.decode(ids) == text


@settings(max_examples=150, deadline=None)
@given(text=any_text)
def test_encode_matches_reference_gpt2(pair_gpt2, text):
    ref, nat = pair_gpt2
    assert nat.encode(text) == ref.encode(text)


@HYP
@given(data=st.binary(max_size=80))
def test_encode_random_bytes_decoded_with_replace(pair, data):
    ref, nat = pair
    text = data.decode("utf-8", "replace")
    assert nat.encode(text) == ref.encode(text)
    assert nat.decode(nat.encode(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        " " * 5000,
        "\n" * 3000 + "x",
        "a" * 2000,
        "ab" * 900,
        "1" * 1000,
        "!?" * 700,
        "中文" * 400,
        "\t \r\n" * 500,
        "😀" * 300,
        "the" * 600,
        " " * 100 + "the" * 100,
    ],
)
def test_long_pieces(pair, text):
    """Pre-tokens longer than the flat-scan limit take the heap path in C++."""
    ref, nat = pair
    assert nat.encode(text) == ref.encode(text)


def test_encode_batch_threads(pair):
    ref, nat = pair
    texts = [_multilingual(s, words=50) for s in range(40)] + ["", "<EOS>", "x" * 3000]
    want = [ref.encode(t) for t in texts]
    for threads in (1, 2, 5):
        assert nat.encode_batch(texts, num_threads=threads) == want


def test_encode_from_many_threads(pair):
    """encode() keeps a memo per encoder across calls; concurrent calls (GIL released)
    must neither share it unsafely nor change the ids."""
    from concurrent.futures import ThreadPoolExecutor

    ref, nat = pair
    texts = [_multilingual(s, words=80) for s in range(24)] * 4
    want = [ref.encode(t) for t in texts]
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(nat.encode, texts)) == want
    assert [nat.encode(t) for t in texts] == want


def test_decode_matches_reference(pair):
    ref, nat = pair
    ids = list(range(nat.vocab_size)) * 2
    assert nat.decode_bytes(ids) == ref.decode_bytes(ids)


# ---- training ------------------------------------------------------------------------
words = st.lists(
    st.sampled_from(["a", "b", "ab", "ba", "aab", " ", "  ", "\n", "'s", "1", "23", "é", "中", "<EOS>", "."]),
    max_size=12,
).map("".join)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@settings(max_examples=150, deadline=None)
@given(corpus=st.lists(st.one_of(words, tricky_text), min_size=1, max_size=12), extra=st.integers(0, 80))
def test_train_matches_reference(pattern, corpus, extra):
    import warnings

    corpus = Texts(corpus)  # random strings such as "/" or "a.txt" are text here, not paths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny corpora run out of pairs; both must stop alike
        try:
            want = ReferenceTokenizer.train(corpus, vocab_size=260 + extra, pattern=pattern, show_progress=False)
        except TinyLLMError as e:  # an empty corpus (nothing else is wrong here): both must refuse it alike
            assert "training corpus is empty" in str(e)
            with pytest.raises(TinyLLMError, match=regex.escape(str(e))):
                NativeTokenizer.train(corpus, vocab_size=260 + extra, pattern=pattern, show_progress=False)
            return
        got = NativeTokenizer.train(corpus, vocab_size=260 + extra, pattern=pattern, num_threads=2, show_progress=False)
    assert got.merges == want.merges


@settings(max_examples=100, deadline=None)
@given(corpus=st.lists(any_text, max_size=8))
def test_pretoken_counts_match_reference(corpus):
    trainer = _bpe.Trainer("gpt4", 2)
    trainer.add_texts(corpus)
    want = {to_utf8(k): v for k, v in count_pretokens(Texts(corpus)).items()}  # "/" is text here
    assert trainer.pretoken_counts() == want


def test_counts_added_after_a_query_are_kept():
    """num_pretokens()/pretoken_counts() fold the worker tables into one; texts added
    afterwards, counted on several workers, must still be folded in on the next query."""
    first = [_multilingual(s, words=30) for s in range(20)]
    later = [_multilingual(s, words=30) for s in range(20, 140)]
    trainer = _bpe.Trainer("gpt4", 4)
    trainer.add_texts(first)
    assert trainer.num_pretokens() == len(count_pretokens(first))
    for i in range(0, len(later), 3):  # one chunk per call: the calls rotate over the workers
        trainer.add_texts(later[i : i + 3])
        if i == 30:
            trainer.pretoken_counts()
    want = count_pretokens(first + later)
    assert trainer.pretoken_counts() == {to_utf8(k): v for k, v in want.items()}
    assert trainer.num_pretokens() == len(want)
    ref = ReferenceTokenizer.train(first + later, vocab_size=400, show_progress=False)
    assert [tuple(m) for m in trainer.train(400 - 260)] == ref.merges


def test_train_bible_identical(tmp_path):
    from pybible.Bible import Bible

    texts = list(Bible)[:15000]
    ref = ReferenceTokenizer.train(texts, vocab_size=2000, show_progress=False)
    nat = NativeTokenizer.train(texts, vocab_size=2000, num_threads=2, show_progress=False)
    assert nat.merges == ref.merges
    assert nat.encode(" ".join(texts[:500])) == ref.encode(" ".join(texts[:500]))


def test_train_file_streams_across_blocks(tmp_path):
    """A 2.5 MB file (block size 1 MB) with multi-byte characters and invalid bytes
    straddling the block edges counts exactly like the whole text decoded at once."""
    unit = "naïve café 数据 x'll 123456 \r\n  ".encode() + b"\xe2\x82 " + "😀".encode()
    raw = bytearray(unit * (2_600_000 // len(unit)))
    for edge in (1 << 20, 2 << 20):  # invalid and split sequences right at the block edges
        raw[edge - 2 : edge + 2] = b"\xf0\x9f\x98\xc3"
    path = tmp_path / "big.txt"
    path.write_bytes(bytes(raw))
    trainer = _bpe.Trainer("gpt4", 2)
    nbytes, replaced = trainer.add_file(str(path))
    text = bytes(raw).decode("utf-8", "replace")
    assert nbytes == len(raw) and replaced == _count_replacements(bytes(raw))
    want = {to_utf8(k): v for k, v in count_pretokens([text]).items()}
    assert trainer.pretoken_counts() == want
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nat = NativeTokenizer.train(path, vocab_size=400, show_progress=False)
        ref = ReferenceTokenizer.train(path, vocab_size=400, show_progress=False)
    assert nat.merges == ref.merges


def test_add_texts_cuts_long_texts(tmp_path):
    """Single texts over 2 MiB are cut for the workers: at the last safe cut of the
    first MiB, else at the first one after it (a long digit run), else not at all."""
    from tinyllm.tokenizer.reference import train_merges

    words = "naïve café 数据 x'll 123 ω\n" * (2_300_000 // 30)  # safe cuts everywhere
    digits_then_words = "7" * 1_200_000 + "données 中文 " * 80_000  # none in the first MiB
    no_cut = "9" * 2_200_000 + " é"  # none at all
    texts = ["hi there", words, digits_then_words, no_cut, "<EOS> done"]
    assert all(len(to_utf8(t)) > 2 << 20 for t in texts[1:4])
    trainer = _bpe.Trainer("gpt4", 3)
    trainer.add_texts(texts)
    want = count_pretokens(texts)
    assert trainer.pretoken_counts() == {to_utf8(k): v for k, v in want.items()}
    assert [tuple(m) for m in trainer.train(60)] == train_merges(want, 60)


def test_add_file_long_stretch_without_safe_cut(tmp_path):
    """A file whose 2.5 MB digit run spans whole read blocks (1 MiB): the reader keeps
    more than a block of text with no safe cut and goes on searching for one after it
    (only the new bytes), and the counts come out whole."""
    from tinyllm.tokenizer.reference import train_merges

    text = "alpha beta ütf 数据\n" * 5_000 + "0123456789" * 250_000 + "xyz words after it " * 60_000
    path = tmp_path / "digits.txt"
    path.write_text(text, encoding="utf-8")
    trainer = _bpe.Trainer("gpt4", 2)
    nbytes, replaced = trainer.add_file(str(path))
    assert (nbytes, replaced) == (len(to_utf8(text)), 0)
    want = count_pretokens([text])
    assert trainer.pretoken_counts() == {to_utf8(k): v for k, v in want.items()}
    assert [tuple(m) for m in trainer.train(60)] == train_merges(want, 60)


def test_trainer_file_error_message(tmp_path):
    with pytest.raises(RuntimeError, match=r"cannot read corpus file .*nope\.txt: No such file"):
        _bpe.Trainer("gpt4", 1).add_file(str(tmp_path / "nope.txt"))


# ---- documents cut in C++ (csrc/paragraphs.h) against tinyllm.data.corpus -------------------
WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]


def _ref_spans(text: str) -> list[tuple[int, int]]:
    """The paragraphs corpus._paragraphs keeps, as (start, end) offsets: the reference's cut."""
    from tinyllm.data.corpus import PARAGRAPH_BREAK

    spans, start = [], 0
    for m in [*PARAGRAPH_BREAK.finditer(text), None]:
        end = m.start() if m else len(text)
        if text[start:end].strip():
            spans.append((start, end))
        start = m.end() if m else start
    return spans


def test_paragraph_whitespace_is_str_isspace_for_every_code_point(pair):
    """Every code point between newlines, in strings of each storage width (1, 2, 4 bytes): C++ cuts
    where the regex does, so its whitespace set is exactly str.isspace's (the regex's \\s)."""
    _, nat = pair
    for lo, hi in ((0, 0x100), (0x100, 0x10000), (0x10000, 0x110000)):
        text = "".join(f"x\n{chr(c)}\n" for c in range(lo, hi)) + ("\U0001f600" if hi > 0x10000 else "")
        assert nat.paragraph_spans(text) == _ref_spans(text), hex(lo)
        # the same as UTF-8 bytes (width 0, cut by decoded code point), surrogates left out: UTF-8 has none
        utf8 = "".join(f"x\n{chr(c)}\n" for c in range(lo, hi) if not 0xD800 <= c < 0xE000) + text[-1]
        assert _utf8_paragraphs(nat, utf8) == _ref_paragraphs(utf8), hex(lo)


def _ref_paragraphs(text: str) -> list[str]:
    return [text[a:b] for a, b in _ref_spans(text)]


def _utf8_paragraphs(nat, text: str) -> list[str]:
    """The paragraphs the C++ cuts from text's UTF-8 bytes (spans in bytes)."""
    data = text.encode()
    return [data[a:b].decode() for a, b in nat.paragraph_spans(data)]


@given(
    st.lists(
        st.sampled_from(["a", "bc", "\n", "\n\n", " ", "é", "中", "\U0001f600", "\ud800", *WHITESPACE]), max_size=60
    )
)
@HYP
def test_paragraph_spans_match_the_regex(pair, parts):
    _, nat = pair
    text = "".join(parts)
    assert nat.paragraph_spans(text) == _ref_spans(text)
    utf8 = "".join(p for p in parts if p != "\ud800")  # (UTF-8 has no surrogates)
    assert _utf8_paragraphs(nat, utf8) == _ref_paragraphs(utf8)


@HYP
@given(data=utf8ish)
def test_utf8_valid_is_whether_python_decodes_it(data):
    try:
        data.decode("utf-8")
        want = True
    except UnicodeDecodeError:
        want = False
    assert _bpe.utf8_valid(data) == want


def test_encode_paragraphs_flat_equals_encode_batch_flat_of_the_documents(pair):
    import numpy as np

    from tinyllm.data.corpus import paragraphs

    _, nat = pair
    texts = [_multilingual(s, words=120).replace("!\n\n", "!\n \u3000\n") for s in range(12)]
    texts += ["", " \n\n \n", "lone paragraph", "\n\nlead\n\n\ntrail  \n", "é" * 50 + "\n\n" + "\U0001f600x"]
    # longer than the 2^18-unit pieces whose breaks are found in parallel: whitespace runs, with and
    # without breaks, across the piece boundaries (ASCII, UCS-2 and UCS-4 storage)
    rng = random.Random(1)
    alphabet = ["a", "bc ", "\n", "\n\n", " ", "\t \n \n", "\u3000", "\U0001f600"]
    for extra in ("", "\u3000", "\U0001f600"):
        body = "".join(rng.choice(alphabet[:6]) for _ in range(170_000)) + extra
        cut = (1 << 18) - 7
        texts.append(body[:cut] + " \n" * 3000 + body[cut:] + "\n" + " " * 300_000 + "\nz")
    docs = [d for t in texts for d in paragraphs(t)]
    want_ids, want_off = nat.encode_batch_flat(docs, num_threads=1)
    # each text also as UTF-8 bytes (what prepare hands over for a plain text file), alone and mixed
    as_bytes = [t.encode() for t in texts]
    mixed = [t.encode() if i % 2 else t for i, t in enumerate(texts)]
    for threads in (1, 2, 3):
        for given_ in (texts, as_bytes, mixed):
            ids, offsets, counts, chars = nat.encode_paragraphs_flat(given_, num_threads=threads)
            assert np.array_equal(ids, want_ids) and np.array_equal(offsets, want_off)
            assert counts.tolist() == [len(paragraphs(t)) for t in texts]
            assert chars.tolist() == [sum(map(len, paragraphs(t))) for t in texts]  # characters, not bytes
    with pytest.raises(TinyLLMError, match="must be str or bytes"):
        nat.encode_paragraphs_flat(["ok", bytearray(b"x")], num_threads=1)
    with pytest.raises(TypeError, match="takes str or UTF-8 bytes"):  # the binding's own check
        nat._native.encode_paragraphs_flat([1], 0, 1)


# ---- Paragraphs: the C++ trainer cutting documents out of blocks (what `tinyllm tokenizer train` streams) ----
def _paragraph_counts(trainer) -> dict:
    return trainer.pretoken_counts()


def _document_counts(blocks, pattern: str = "gpt4") -> dict:
    """The reference: each block's documents (tinyllm.data.corpus.paragraphs) counted as texts."""
    from tinyllm.data.corpus import paragraphs

    docs = [d for b in blocks for d in paragraphs(b)]
    return {to_utf8(k): v for k, v in count_pretokens(Texts(docs), pattern).items()}


@given(
    blocks=st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(["a", "bc", " x", "\n", "\n\n", " \n \n", "é", "中", "<EOS>", ".", *WHITESPACE]),
                tricky_text,
            ),
            max_size=30,
        ).map("".join),
        max_size=5,
    ),
    as_bytes=st.lists(st.booleans(), min_size=5, max_size=5),
    pattern=st.sampled_from(["gpt4", "gpt2"]),
)
@HYP
def test_paragraphs_count_the_documents_of_each_block(blocks, as_bytes, pattern):
    """add_paragraphs (str, and UTF-8 bytes where the block has no surrogate) counts what the reference
    counts of the documents tinyllm.data.corpus cuts: blank paragraphs dropped, each + "\n\n"; and the
    reference's own Paragraphs input counts the same."""
    from tinyllm.tokenizer.inputs import Paragraphs

    blocks = [
        b.encode() if flag and not any(0xD800 <= ord(c) < 0xE000 for c in b) else b for b, flag in zip(blocks, as_bytes)
    ]
    want = _document_counts(blocks, pattern)
    trainer = _bpe.Trainer(pattern, 2)
    trainer.add_paragraphs(blocks)
    assert _paragraph_counts(trainer) == want
    ref = {to_utf8(k): v for k, v in count_pretokens(Paragraphs(blocks), pattern).items()}
    assert ref == want


def test_a_long_paragraph_is_cut_for_the_workers_and_ends_with_its_blank_line():
    """A paragraph over two chunks' worth (2 MiB) goes to the workers in pieces cut at safe cuts; its
    "\n\n" follows only the last piece (after every piece, the pieces' ends would count as more)."""
    long_par = "naïve café 数据 x'll 123 ω" * (2_600_000 // 30)
    assert len(to_utf8(long_par)) > 2 << 20
    blocks = ["intro\n\n" + long_par + "\n\n\n  \n" + long_par + "!\n", b"tail words\n"]
    trainer = _bpe.Trainer("gpt4", 3)
    trainer.add_paragraphs(blocks, wait=False)
    assert _paragraph_counts(trainer) == _document_counts(blocks)


def _open_cuts(text: str) -> list[int]:
    """Every place tokenizer.inputs.is_open_cut allows, by its definition, one position at a time."""
    from tinyllm.tokenizer.inputs import is_open_cut

    return [p for p in range(len(text)) if is_open_cut(text, p)]


@given(
    text=st.lists(
        st.one_of(
            st.sampled_from(["a", "bc", " x", " ", "\n", "\n\n", " \n \n", "é", "中", "<EOS>", ".", "'s", *WHITESPACE]),
            tricky_text,
        ),
        max_size=40,
    ).map("".join),
    picks=st.lists(st.integers(0, 10**6), max_size=4),
    as_bytes=st.booleans(),
    pattern=st.sampled_from(["gpt4", "gpt2"]),
)
@HYP
def test_open_blocks_count_the_paragraph_whole(text, picks, as_bytes, pattern):
    """A text cut into OpenBlocks at places is_open_cut allows counts, through the native trainer's
    routing and the reference, what the whole text's documents count: the pieces' pre-tokens add up to
    the paragraph's, and only the last piece gets its "\n\n" (with "\n\n" after every piece, or a cut
    where a paragraph break or a pre-token spans it, the counts differ)."""
    from tinyllm.tokenizer.inputs import OpenBlock, Paragraphs
    from tinyllm.tokenizer.native import _Counter

    cuts = _open_cuts(text)
    chosen = sorted({cuts[i % len(cuts)] for i in picks}) if cuts else []
    pieces = [text[a:b] for a, b in zip([0, *chosen], [*chosen, len(text)])]
    if as_bytes and not any(0xD800 <= ord(c) < 0xE000 for c in text):
        pieces = [p.encode() for p in pieces]
    blocks = [OpenBlock(p) for p in pieces[:-1]] + pieces[-1:]
    want = _document_counts([text], pattern)
    trainer = _bpe.Trainer(pattern, 2)
    _Counter(trainer).count(Paragraphs(blocks))
    assert _paragraph_counts(trainer) == want
    ref = {to_utf8(k): v for k, v in count_pretokens(Paragraphs(blocks), pattern).items()}
    assert ref == want


@given(
    text=st.lists(
        st.one_of(st.sampled_from(["a", "é", "中", " ", "\n", "\u3000", "1", "'"]), tricky_text), max_size=30
    ).map("".join)
)
@HYP
def test_open_cuts_of_bytes_are_those_of_the_str(text):
    """is_open_cut reads UTF-8 bytes as the str they decode to (the cutter searches the read bytes)."""
    from tinyllm.data.corpus import last_open_cut
    from tinyllm.tokenizer.inputs import is_open_cut

    if any(0xD800 <= ord(c) < 0xE000 for c in text):
        return
    data = text.encode()
    offsets = [len(text[:i].encode()) for i in range(len(text))]
    assert [p for p in range(len(data)) if is_open_cut(data, p)] == [offsets[p] for p in _open_cuts(text)]
    for lo in (0, 1, len(data) // 2):
        want = [p for p in range(max(lo, 1), len(data)) if is_open_cut(data, p)]
        assert last_open_cut(bytearray(data), lo) == (want[-1] if want else -1)


def test_open_block_errors_name_the_block():
    from tinyllm.tokenizer.inputs import OpenBlock, Paragraphs

    cases = [
        ([OpenBlock("ends in a space "), " more"], r"block 0 is an OpenBlock, but it does not end with a letter"),
        ([OpenBlock("words"), "more"], r"block 0 is an OpenBlock, but block 1 does not go on with its paragraph"),
        (["x\n\n", OpenBlock(b"words"), b"  two spaces"], r"block 1 is an OpenBlock, but block 2 does not go on"),
        (["x\n\n", OpenBlock("words")], r"block 1 is an OpenBlock, but no block goes on with its paragraph"),
        ([OpenBlock(3), " x"], r"block 0 must be str or bytes, got int"),
    ]
    for impl in (NativeTokenizer, ReferenceTokenizer):
        for blocks, message in cases:
            with pytest.raises(TinyLLMError, match=message):
                impl.train(Paragraphs(blocks), vocab_size=300, show_progress=False)


def test_add_paragraphs_refuses_bytes_that_are_not_utf8():
    trainer = _bpe.Trainer("gpt4", 1)
    with pytest.raises(ValueError, match=r"texts\[1\] is bytes but not valid UTF-8"):
        trainer.add_paragraphs([b"fine\n\n", b"caf\xe9\n\n"])
    assert trainer.num_pretokens() == 0  # nothing of the batch was counted


def test_paragraphs_input_errors_name_the_block_and_the_source():
    from tinyllm.tokenizer.inputs import Paragraphs

    for impl in (NativeTokenizer, ReferenceTokenizer):
        with pytest.raises(TinyLLMError, match=r"Paragraphs: block 1 must be str or bytes, got int"):
            impl.train(Paragraphs(["ok\n\n", 3]), vocab_size=300, show_progress=False)
        with pytest.raises(TinyLLMError, match=r"training corpus is empty: no text in data/notes"):
            impl.train(Paragraphs(["\n\n \u3000\n", b""], name="data/notes"), vocab_size=300, show_progress=False)
    with pytest.raises(TinyLLMError, match="Paragraphs: expected an iterable"):
        Paragraphs("one block")


# ---- the tokenizer file's merge lines: csrc/merges_text.h against format.py's line-at-a-time reader ---
@HYP
@given(data=st.binary(max_size=40))
def test_bytes_repr_is_pythons(data):
    assert _bpe.bytes_repr(data) == repr(data)


def _merge_lines(tok, rng: random.Random) -> list[str]:
    """tok's merge lines, one of them broken (or none) in one of the ways a file can be wrong."""
    lines = tok.to_str().split("\n")
    body = lines[lines.index(f"merges {len(tok.merges)}") + 1 : -2]
    k = rng.randrange(len(body))
    ids, _, shown = body[k].partition("\t")
    a, b = ids.split(" ")
    how = rng.choice(
        [
            "none", "swap", "forward", "special", "no column", "empty column", "column char", "double space",
            "leading zero", "unicode digit", "end", "extra tab", "cr", "sign", "nine digits", "ten digits", "huge id",
            "column other token",
        ]
    )  # fmt: skip
    body[k] = {
        "none": body[k],
        "swap": f"{b} {a}\t{shown}",
        "forward": f"{a} {260 + k}\t{shown}",
        "special": f"{a} 3\t{shown}",
        "no column": ids,
        "empty column": ids + "\t",
        "column char": f"{ids}\t{shown[:-2]}x{shown[-1]}",
        "double space": f"{a}  {b}\t{shown}",
        "leading zero": f"0{a} {b}\t{shown}",
        "unicode digit": f"{a} {b}\u0663\t{shown}",
        "end": "end",
        "extra tab": f"{ids}\t{shown}\t",
        "cr": f"{ids}\t{shown}\r",
        "sign": f"+{a} {b}\t{shown}",
        "nine digits": f"{int(a):09d} {b}\t{shown}",
        "ten digits": f"{int(a):010d} {b}\t{shown}",
        "huge id": f"{a} {2**32 + int(b)}\t{shown}",
        "column other token": f"{ids}\t{body[k - 1].partition(chr(9))[2] if k else repr(b'?')}",
    }[how]
    return body


@pytest.mark.parametrize("seed", range(300))
def test_merge_lines_parse_as_the_line_reader_parses_them(merges, seed):
    """Where the C++ says a file is well formed, the Python reader returns the same merges; where the
    Python reader finds an error, the C++ says None (and Python words it)."""
    from tinyllm.tokenizer import format as F

    rng = random.Random(seed)
    lines = _merge_lines(ReferenceTokenizer(merges[: rng.randint(1, len(merges))]), rng)
    got = _bpe.merges_if_well_formed(lines, F.BYTE_OFFSET)
    r = F._LineReader(lines + ["end"], "<test>")
    r.pos = 0  # (it starts past a version line)
    try:
        want = F._read_merges_checked(r, len(lines))
    except (TinyLLMError, ValueError):
        want = None
    assert got == want


def test_a_tokenizer_file_loads_with_the_c_parser_as_with_the_python_one(merges, tmp_path, monkeypatch):
    from tinyllm.tokenizer import format as F

    tok = NativeTokenizer(merges)
    tok.save(tmp_path / "tok.txt")
    calls = []
    real = _bpe.merges_if_well_formed
    monkeypatch.setattr(F, "_native_merges", lambda: lambda *a: calls.append(1) or real(*a))
    loaded = NativeTokenizer.load(tmp_path / "tok.txt")
    monkeypatch.setattr(F, "_native_merges", lambda: None)
    assert calls and loaded == tok == NativeTokenizer.load(tmp_path / "tok.txt")


# ---- the reference's tables, made lazily from the C++ ones --------------------------------
def test_the_reference_tables_are_made_when_asked_and_equal_the_reference_s(merges, tmp_path):
    """A native tokenizer builds only its C++ tables (loading is half as long); the reference's
    vocab, ranks and regexes come from them when a reference method first asks, equal to the
    reference's own."""
    for pattern in ("gpt4", "gpt2"):
        ref = ReferenceTokenizer(merges, pattern)
        ref.save(tmp_path / f"{pattern}.txt")
        for nat in (NativeTokenizer(merges, pattern), NativeTokenizer.load(tmp_path / f"{pattern}.txt")):
            assert not {"_vocab", "_ranks", "_pat", "_special_all"} & set(vars(nat))
            assert nat.vocab_size == ref.vocab_size
            assert nat.encode("ok <EOS> done") == ref.encode("ok <EOS> done")
            assert not {"_vocab", "_ranks"} & set(vars(nat))  # encoding asked for none of them
            assert nat._vocab == ref._vocab and nat.mergeable_ranks() == ref.mergeable_ranks()
            assert nat._pat.pattern == ref._pat.pattern and nat._special_all.pattern == ref._special_all.pattern
            ids = ref.encode("héllo wörld 中文 🙂 <BOS>")
            assert nat.token_strings(ids) == ref.token_strings(ids)
            assert nat.to_str() == ref.to_str()
            # the reference's own Python encoder, on the lazily made tables
            assert ReferenceTokenizer.encode(nat, "héllo wörld 中文 🙂") == ref.encode("héllo wörld 中文 🙂")


@pytest.mark.parametrize(
    "bad",
    [
        [(4, 4), (4, 4)],  # the same byte string twice
        [(4, 5), (4, 5)],
        [(1, 5)],  # a special id
        [(4, 260)],  # an id not made yet
        [(4, 5), (260, 262)],
        [(-1, 5)],  # not a uint32: pybind refuses it before the C++ checks
        [(4, 2**40)],
    ],
)
def test_bad_merges_are_refused_in_the_reference_s_words(bad):
    with pytest.raises(TinyLLMError) as want:
        ReferenceTokenizer(bad)
    with pytest.raises(TinyLLMError) as got:
        NativeTokenizer(bad)
    assert str(got.value) == str(want.value)
