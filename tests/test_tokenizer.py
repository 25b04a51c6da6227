"""Tokenizer API tests, run against both implementations (reference and native).

The native parametrization skips when the C++ core is not built, and fails instead
when TINYLLM_REQUIRE_NATIVE=1 (CI). C++-vs-reference parity on random input lives in
test_tokenizer_native.py.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest
import regex

from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import SPECIAL_TOKENS, Texts, Tokenizer, native_available
from tinyllm.tokenizer.inputs import CorpusWarning, iter_file_segments, iter_text_segments, last_safe_cut
from tinyllm.tokenizer.patterns import PATTERNS
from tinyllm.tokenizer.reference import Tokenizer as ReferenceTokenizer

REQUIRE_NATIVE = os.environ.get("TINYLLM_REQUIRE_NATIVE") == "1"

SAMPLES = [
    "",
    "a",
    "hello world",
    "Hello, World! It's 2024; we'll see: I'd've thought THEY'RE right.",
    "  leading and trailing spaces   ",
    "line one\r\nline two\r\n\r\n\n\n  indented\n\ttabbed\n",
    " " * 300 + "x" + "\n" * 50,
    "1234567890 3.14159 1,000,000 ٣٤٥ ²³",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷",
    "中文测试，日本語のテキスト、한국어 텍스트",
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी",
    "<BOS>special <EOS> tokens<PAD><UNK> and <EOS<BOS>>",
    "a\ud800b lone surrogates \udfff",
    "\x00\x01 control \x7f chars \u200b\u200d\ufeff",
    "def f(x):\n    return {'a': [1, 2]}  # comment\n",
]


def _native_cls():
    if not native_available():
        if REQUIRE_NATIVE:
            pytest.fail("TINYLLM_REQUIRE_NATIVE=1 but tinyllm._bpe is not built")
        pytest.skip("the C++ core (tinyllm._bpe) is not built")
    from tinyllm.tokenizer.native import NativeTokenizer

    return NativeTokenizer


@pytest.fixture(params=["reference", "native"])
def impl(request):
    """The tokenizer class under test."""
    return ReferenceTokenizer if request.param == "reference" else _native_cls()


@pytest.fixture(scope="module")
def bible_texts():
    from pybible.Bible import Bible

    return list(Bible)


@pytest.fixture(scope="module")
def trained_merges(bible_texts):
    """Merges for a 1000-token vocab learned from the Bible plus SAMPLES (reference)."""
    tok = ReferenceTokenizer.train(bible_texts[:8000] + SAMPLES * 3, vocab_size=1000, show_progress=False)
    return tok.merges


@pytest.fixture
def tok(impl, trained_merges):
    return impl(trained_merges, "gpt4")


def test_native_is_built_when_required():
    if REQUIRE_NATIVE:
        assert native_available(), "TINYLLM_REQUIRE_NATIVE=1 but tinyllm._bpe did not import"
        assert Tokenizer.__name__ == "NativeTokenizer" or os.environ.get("TINYLLM_PURE_PYTHON") == "1"


def test_pure_python_switch(trained_merges):
    """TINYLLM_PURE_PYTHON=1 exports the reference; otherwise the native class when it
    is built. Checked in a fresh interpreter with the switch on, whatever this one has."""
    import json
    import subprocess
    import sys

    if os.environ.get("TINYLLM_PURE_PYTHON") == "1" or not native_available():
        assert Tokenizer is ReferenceTokenizer
    else:
        assert Tokenizer is _native_cls()
    text = SAMPLES[3] + SAMPLES[9] + SAMPLES[11]
    code = (
        "import json, sys\n"
        "from tinyllm.tokenizer import ReferenceTokenizer, Tokenizer\n"
        "assert Tokenizer is ReferenceTokenizer, Tokenizer\n"
        "merges, text = json.load(sys.stdin)\n"
        "print(json.dumps(Tokenizer(merges).encode(text)))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([trained_merges, text]),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=dict(os.environ, TINYLLM_PURE_PYTHON="1"),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == Tokenizer(trained_merges).encode(text)


def test_docstring_examples(tmp_path, monkeypatch):
    """The worked examples in the tokenizer's docstrings are run, so they stay true."""
    import doctest

    from tinyllm.tokenizer import inputs, reference

    monkeypatch.chdir(tmp_path)  # path_like's examples assume no such files here
    for module in (reference, inputs):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, (
            f"{result.failed} docstring example(s) in {module.__name__} failed (printed above)"
        )


# ---- ids, specials and round trips ------------------------------------------------------
def test_id_layout(tok):
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.special_tokens == SPECIAL_TOKENS == {"<PAD>": 0, "<UNK>": 1, "<BOS>": 2, "<EOS>": 3}
    assert tok.vocab_size == 1000
    assert tok.encode("A", allowed_special="none") == [ord("A") + 4]  # byte b is id b + 4
    ranks = tok.mergeable_ranks()
    assert ranks[b"A"] == ord("A") + 4 and len(ranks) == tok.vocab_size - 4
    assert sorted(ranks.values()) == list(range(4, tok.vocab_size))


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode(text, allowed_special="none")) == text


def test_special_tokens(tok):
    ids = tok.encode("a<EOS>b<BOS>")
    assert ids[1] == 3 and ids[-1] == 2
    assert tok.encode("<PAD><UNK><BOS><EOS>") == [0, 1, 2, 3]
    plain = tok.encode("a<EOS>b", allowed_special="none")
    assert 3 not in plain and tok.decode(plain) == "a<EOS>b"
    only_bos = tok.encode("<EOS><BOS>", allowed_special={"<BOS>"})
    assert only_bos[-1] == 2 and 3 not in only_bos
    # specials are never produced by ordinary text: "<EOS" + ">" stays ordinary
    assert not set(tok.encode("<EOS <EO S> <eos>")) & {0, 1, 2, 3}
    assert tok.decode([2, 3]) == "<BOS><EOS>"


def test_encode_batch_matches_encode(tok):
    texts = SAMPLES * 5
    assert tok.encode_batch(texts, num_threads=2) == [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, num_threads=1, allowed_special="none") == [
        tok.encode(t, allowed_special="none") for t in texts
    ]
    assert tok.encode_batch([]) == []


def test_decode_bytes_and_invalid_utf8(tok):
    euro = "€".encode()  # e2 82 ac
    ids = [euro[0] + 4, euro[1] + 4]  # a sequence cut mid-character
    assert tok.decode_bytes(ids) == euro[:2]
    assert tok.decode(ids) == "\ufffd"
    assert tok.decode(ids + [ord("x") + 4]) == "\ufffdx"


def test_token_strings_view(impl):
    # merges: " l", " lo", " low", "er" -> " lower" is ['▁low', 'er'] (TinyLLM's example)
    sp, l, o, w, e, r = (ord(c) + 4 for c in " lower")
    tok = impl([(sp, l), (260, o), (261, w), (e, r)])
    assert tok.token_strings(" lower") == ["\u2581low", "er"]
    assert tok.token_strings(tok.encode(" lower")) == ["\u2581low", "er"]
    assert tok.token_strings("é<EOS>") == ["é"[0:0] + "<0xC3>", "<0xA9>", "<EOS>"]


@pytest.mark.parametrize("name", ["gpt4", "gpt2"])
def test_pattern_is_the_name_and_pattern_regex_the_regex(impl, name):
    """A tiktoken Encoding built by hand needs tok.pattern_regex: tok.pattern is the name,
    which as a regex matches nothing in ordinary text (zero tokens)."""
    import regex

    from tinyllm.tokenizer import PATTERNS

    tok = impl([], name)
    assert tok.pattern == name and tok.pattern_regex == PATTERNS[name]
    assert impl([], PATTERNS[name]).pattern == name  # the regex is accepted in place of the name
    text = SAMPLES[3]
    assert "".join(regex.findall(tok.pattern_regex, text)) == text and regex.findall(tok.pattern, text) == []


def test_tiktoken_parity_small(tok):
    tiktoken = pytest.importorskip("tiktoken")
    enc = tok.to_tiktoken()
    assert isinstance(enc, tiktoken.Encoding)
    for text in SAMPLES:
        if any(0xD800 <= ord(c) < 0xE000 for c in text):
            continue  # tiktoken replaces lone surrogates
        assert enc.encode(text, allowed_special="all") == tok.encode(text), text


# ---- training -------------------------------------------------------------------------
def test_train_basic(impl, bible_texts):
    tok = impl.train(bible_texts[:3000], vocab_size=400, show_progress=False)
    assert tok.vocab_size == 400 and tok.pattern == "gpt4"
    text = " ".join(bible_texts[3000:3050])
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) < len(text.encode()) / 2  # it learned something


def test_train_inputs_mix_files_dirs_texts(impl, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("alpha beta gamma " * 50)
    (tmp_path / "d" / "sub" / "b.txt").write_text("delta epsilon " * 50)
    (tmp_path / "d" / "ignored.md").write_text("zeta " * 500)
    f = tmp_path / "c.txt"
    f.write_text("eta theta " * 50)
    tok = impl.train([tmp_path / "d", str(f.read_text()), f], vocab_size=285, show_progress=False)
    same = impl.train(
        ["alpha beta gamma " * 50, "delta epsilon " * 50, "eta theta " * 50, "eta theta " * 50],
        vocab_size=285,
        show_progress=False,
    )
    assert tok.merges == same.merges
    assert not any("zeta" in s for s in tok.token_strings(list(range(260, tok.vocab_size))))


# A str is text; one that names or looks like a file is refused (the trap: train(["corpus.txt"])
# trained on those ten characters and only warned that the vocab was not reached).
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: str(d / "corpus.txt"), r"corpus\.txt' names an existing file"),
        (lambda d: "corpus.txt", r"^files_or_texts: 'corpus\.txt' names an existing file, but a str is training text"),
        (lambda d: str(d), r"names an existing directory"),
        (lambda d: "docs", r"'docs' names an existing directory"),
        (lambda d: "docs/", r"'docs/' names an existing directory"),
        (lambda d: "missing.txt", r"'missing\.txt' looks like a file name"),
        (lambda d: "Corpus.JSONL", r"looks like a file name"),
        (lambda d: "/nonexistent/corpus", r"'/nonexistent/corpus' looks like a path"),
        (lambda d: "missing_dir/", r"looks like a path"),
        (lambda d: "docs/missing", r"'docs/missing' looks like a path"),
        (lambda d: "my corpus.txt", r"names an existing file"),  # spaces in a name that exists
    ],
)
@pytest.mark.parametrize("wrap", [lambda s: s, lambda s: [s], lambda s: ["some text", s], lambda s: iter([s])])
def test_train_refuses_str_that_is_a_path(impl, tmp_path, monkeypatch, make, message, wrap):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text("alpha beta " * 50)
    (tmp_path / "my corpus.txt").write_text("alpha beta " * 50)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("gamma delta " * 50)
    item = make(tmp_path)
    with pytest.raises(TinyLLMError, match=message) as e:
        impl.train(wrap(item), vocab_size=270, show_progress=False)
    assert f"pass pathlib.Path({item!r})" in str(e.value) and "Texts(" in str(e.value)


@pytest.mark.parametrize(
    "text",
    [
        "hello",  # one word
        "a",
        ".txt",
        "e.g.",
        "Node.js",
        "and/or",
        "1/2",
        "https://example.com/page",
        "see notes.txt",
        "missing corpus.txt",  # spaces: a sentence that ends in a file name
        "read corpus.txt\n",  # several lines
        "corpus.txt " + "word " * 60,  # a long text containing .txt
        "x" * 300 + ".txt",  # one word, but longer than any file name
        "docs" + "\n",
    ],
)
def test_train_takes_text_that_mentions_files(impl, tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "corpus.txt").write_text("unrelated")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)  # a short text cannot reach 262
        tok = impl.train([text], vocab_size=262, show_progress=False)
    assert all(tok.token_bytes(i) in text.encode() for i in range(260, tok.vocab_size))  # learned from the text


def test_texts_wrapper_skips_the_path_check(impl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text("file contents that must not be read " * 20)
    (tmp_path / "data").mkdir()
    docs = ["corpus.txt", "setup.py", "data/"] * 30  # one-line paragraphs of a corpus about code
    tok = impl.train(Texts(docs), vocab_size=270, show_progress=False)
    assert all(any(tok.token_bytes(i) in d.encode() for d in docs) for i in range(260, tok.vocab_size))
    mixed = impl.train([Texts(docs[:45]), Texts(iter(docs[45:]))], vocab_size=270, show_progress=False)
    assert mixed.merges == tok.merges
    with pytest.raises(TinyLLMError, match=r"Texts: expected an iterable of str, got str; use Texts\(\[text\]\)"):
        Texts("corpus.txt")
    with pytest.raises(TinyLLMError, match=r"Texts: element 1 must be str, got PosixPath"):
        impl.train(Texts(["ok", tmp_path / "corpus.txt"]), vocab_size=270, show_progress=False)


def test_train_from_generator_and_specials_not_learned(impl):
    texts = (f"<BOS> story number {i} <EOS>" for i in range(300))
    tok = impl.train(texts, vocab_size=320, show_progress=False)
    learned = {tok.token_bytes(i) for i in range(260, tok.vocab_size)}
    assert not any(b"<" in t or b">" in t for t in learned)


def test_gpt2_pattern(impl):
    tok = impl.train(["don't stop 12345  x" * 20], vocab_size=270, pattern="gpt2", show_progress=False)
    assert tok.pattern == "gpt2"
    assert impl.from_str(tok.to_str()).pattern == "gpt2"
    assert tok.decode(tok.encode("don't 12345")) == "don't 12345"


def test_train_progress_bar_does_not_change_result(impl, capsys):
    a = impl.train(["some text to merge " * 30], vocab_size=270, show_progress=True)
    b = impl.train(["some text to merge " * 30], vocab_size=270, show_progress=False)
    assert a.merges == b.merges


def test_tie_break_smallest_pair_first(impl):
    # (a,b) and (b,a) both occur once: the smaller (left, right) ids win
    tok = impl.train(["ab", "ba"], vocab_size=262, show_progress=False)
    a, b = ord("a") + 4, ord("b") + 4
    assert tok.merges == [(a, b), (b, a)]


# ---- streaming and invalid UTF-8 --------------------------------------------------------
def test_safe_cut_invariance():
    import regex

    from tinyllm.tokenizer.patterns import PATTERNS

    text = "Hello world!\n\n  x = 'It''s'  123456 données\r\n中文 字\t tab\n" * 3
    for pattern in PATTERNS.values():
        whole = regex.findall(pattern, text)
        cut = last_safe_cut(text[:50])
        assert cut > 0
        assert regex.findall(pattern, text[:cut]) + regex.findall(pattern, text[cut:]) == whole


def test_file_streaming_equals_whole_text(tmp_path):
    text = ("naïve café 数据 " * 40 + "\n") * 40
    raw = text.encode() + b"\xe2\x82"  # cut mid-character at the end
    f = tmp_path / "t.txt"
    f.write_bytes(raw)
    with pytest.warns(CorpusWarning, match=r"t\.txt is not valid UTF-8: 1 invalid"):
        segments = list(iter_file_segments(f, block_size=37))  # blocks end mid-character
    assert len(segments) > 10
    assert "".join(segments) == raw.decode("utf-8", "replace")


def test_invalid_utf8_file_trains_with_warning(impl, tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("caf\xe9 na\xefve ".encode("latin-1") * 100 + b"ok \xff\xfe")
    with pytest.warns(CorpusWarning, match=r"latin1\.txt is not valid UTF-8: 202 invalid byte sequence"):
        tok = impl.train(f, vocab_size=270, show_progress=False)
    assert tok.vocab_size == 270


# ---- bad input: one line, names the thing ----------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda T: T.train(["", ""], vocab_size=300), r"training corpus is empty: no text in 2 texts"),
        (lambda T: T.train([], vocab_size=300), r"training corpus is empty: no texts or files were given"),
        (lambda T: T.train("abc", vocab_size=259), r"vocab_size=259 is too small: it must be at least 260"),
        (lambda T: T.train("abc", vocab_size=300.0), r"vocab_size must be an int"),
        (lambda T: T.train("abc", vocab_size=300, pattern="gpt3"), r"unknown split pattern 'gpt3'"),
        (lambda T: T.train("abc", vocab_size=300, num_threads=0), r"num_threads must be None or a positive int"),
        (lambda T: T.train(b"abc", vocab_size=300), r"got bytes"),
        (lambda T: T.train([1, 2], vocab_size=300), r"expected str texts or pathlib.Path"),
        (
            lambda T: T.train(Path("/nonexistent/corpus.txt"), vocab_size=300),
            r"corpus file /nonexistent/corpus.txt does not exist",
        ),
    ],
)
def test_train_bad_input(impl, call, message):
    with pytest.raises(TinyLLMError, match=message):
        call(impl)


def test_train_empty_file_and_empty_dir(impl, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(TinyLLMError, match=r"training corpus is empty: no text in 1 file \(.*empty\.txt\)"):
        impl.train(empty, vocab_size=300, show_progress=False)
    d = tmp_path / "docs"
    d.mkdir()
    (d / "notes.md").write_text("not a txt")
    with pytest.raises(TinyLLMError, match=r"corpus directory .*docs contains no \.txt files"):
        impl.train(d, vocab_size=300, show_progress=False)


def test_train_unreadable_file(impl, tmp_path, monkeypatch):
    f = tmp_path / "secret.txt"
    f.write_text("text")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root can read anything
    with pytest.raises(TinyLLMError, match=r"corpus file .*secret\.txt is not readable"):
        impl.train(f, vocab_size=300, show_progress=False)


def test_train_vocab_out_of_reach_warns(impl):
    with pytest.warns(
        CorpusWarning,
        match=r"vocab_size=5000 is more than this corpus can reach: "
        r"training stopped at vocab size 2\d\d",
    ):
        tok = impl.train(["abcabc abc"], vocab_size=5000, show_progress=False)
    assert tok.vocab_size < 300


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t.encode(b"bytes"), r"encode: text must be str, got bytes"),
        (lambda t: t.encode("x", allowed_special="some"), r"allowed_special must be 'all', 'none' or a set"),
        (lambda t: t.encode("x", allowed_special={"<SEP>"}), r"unknown special token\(s\) \['<SEP>'\]"),
        (lambda t: t.encode_batch("one string"), r"texts must be a list of str"),
        (lambda t: t.encode_batch(["ok", 3]), r"texts\[1\] must be str, got int"),
        (lambda t: t.encode_batch(["ok"], num_threads=0), r"num_threads must be None or a positive int"),
        (lambda t: t.decode([5, 1000]), r"token id 1000 is out of range for vocab_size 1000"),
        (lambda t: t.decode([-1]), r"token id -1 is out of range"),
        (lambda t: t.decode([1.5]), r"ids must be ints, got float"),
        (lambda t: t.decode("abc"), r"ids must be a sequence of ints, got str"),
    ],
)
def test_encode_decode_bad_input(tok, call, message):
    with pytest.raises(TinyLLMError, match=message):
        call(tok)


# ---- save / load ----------------------------------------------------------------------
def test_save_load_round_trip(tok, tmp_path, impl):
    path = tmp_path / "sub" / "tok.txt"
    tok.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["tok.txt"]  # atomic: no temp file left
    text = path.read_text()
    assert text.startswith("tinyllm-bpe v1\npattern gpt4\nspecial <PAD> 0\n")
    assert text.endswith("\nend\n") and f"\nmerges {tok.vocab_size - 260}\n" in text
    loaded = impl.load(path)
    assert loaded == tok and loaded.vocab_size == tok.vocab_size
    assert impl.from_str(tok.to_str()).encode(SAMPLES[3]) == tok.encode(SAMPLES[3])
    assert ReferenceTokenizer.load(path).merges == tok.merges  # the format is shared


def _broken(text: str, what: str) -> str:
    lines = text.split("\n")
    if what == "version":
        return text.replace("tinyllm-bpe v1", "tinyllm-bpe v2", 1)
    if what == "truncated_merges":
        return "\n".join(lines[:20]) + "\n"
    if what == "truncated_end":
        return text[: text.rindex("end")]
    if what == "bad_line":
        lines[10] = "12 x"
        return "\n".join(lines)
    if what == "corrupt_text":
        a, b = lines[10].split("\t")[0].split()
        lines[10] = f"{b} {a}\t" + lines[10].split("\t")[1]
        return "\n".join(lines)
    if what == "forward_ref":
        lines[8] = "999 4\t" + lines[8].split("\t")[1]
        return "\n".join(lines)
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what, message",
    [
        ("version", r"tokenizer format version v2 is not supported \(this tinyllm reads v1\)"),
        ("truncated_merges", r"is truncated: its header says \d+ merges, found 13"),
        ("truncated_end", r"is truncated: the final 'end' line is missing"),
        ("bad_line", r"line 11: expected '<left id> <right id>', got '12 x'"),
        ("corrupt_text", r"line 11: token text .* does not match merge .* the file is corrupted"),
        ("forward_ref", r"line 9: merge \(999, 4\) refers to a token id that is special or not defined"),
    ],
)
def test_load_bad_files(impl, tok, tmp_path, what, message):
    import re

    text = _broken(tok.to_str(), what)
    path = tmp_path / f"{what}.txt"
    path.write_text(text)
    with pytest.raises(TinyLLMError, match=f"{re.escape(path.name)}.*{message}"):  # names the file, then the problem
        impl.load(path)
    with pytest.raises(TinyLLMError, match=f"<string>.*{message}"):  # the same text, parsed from a string
        impl.from_str(text)


def test_load_foreign_and_missing(impl, tmp_path):
    js = tmp_path / "model.json"
    js.write_text('{"vocab": {}}')
    with pytest.raises(TinyLLMError, match=r"model\.json is not a tinyllm tokenizer file \(first line"):
        impl.load(js)
    binary = tmp_path / "weights.pt"
    binary.write_bytes(b"PK\x03\x04\x00\xff\xfe")
    with pytest.raises(TinyLLMError, match=r"weights\.pt is not a tinyllm tokenizer file \(it is not UTF-8"):
        impl.load(binary)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(TinyLLMError, match=r"empty\.txt is empty, not a tinyllm tokenizer file"):
        impl.load(empty)
    with pytest.raises(TinyLLMError, match=r"tokenizer file .*missing\.txt does not exist"):
        impl.load(tmp_path / "missing.txt")
    with pytest.raises(TinyLLMError, match=r"tokenizer file .* is a directory"):
        impl.load(tmp_path)
    with pytest.raises(TinyLLMError, match=r"<string> is not a tinyllm tokenizer file"):
        impl.from_str("hello")


def test_no_warnings_on_clean_training(impl):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        impl.train(["clean text, clean text"] * 10, vocab_size=265, show_progress=False)


# ---- a peer: tiktoken with our ranks, on a large mixed corpus ---------------------------
def _mixed_corpus(max_bytes: int) -> list[str]:
    """English (the Bible), code (the standard library's source) and other scripts."""
    import random
    import sysconfig

    from pybible.Bible import Bible

    docs = ["\n".join(list(Bible)[i : i + 400]) for i in range(0, len(Bible), 400)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py"))[:60]:
        docs.append(path.read_text(encoding="utf-8", errors="replace"))
    rng = random.Random(0)
    scripts = [
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
        (0x660, 0x669),
    ]
    for _ in range(60):
        words = []
        for _ in range(2000):
            lo, hi = rng.choice(scripts)
            words.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6))))
            words.append(rng.choice([" ", " ", ", ", ". ", "\n", "  ", "’s ", " 42 ", "!\n\n", "\t"]))
        docs.append("".join(words))
    rng.shuffle(docs)
    out, size = [], 0
    for d in docs:
        if size >= max_bytes:
            break
        out.append(d)
        size += len(d.encode())
    return out


def test_tiktoken_parity_large_mixed_corpus():
    """tok.to_tiktoken() encodes several MB of English, code and other scripts to exactly
    tok.encode's ids (the exported Tokenizer; a smaller corpus for the pure-Python one)."""
    pytest.importorskip("tiktoken")
    native = Tokenizer is not ReferenceTokenizer
    docs = _mixed_corpus(6_000_000 if native else 1_500_000)
    tok = Tokenizer.train(docs[::3], vocab_size=3000, show_progress=False)
    enc = tok.to_tiktoken()
    assert enc.encode_ordinary_batch(docs) == tok.encode_batch(docs, allowed_special="none")
    assert sum(len(d) for d in docs) > (5_000_000 if native else 1_000_000)


def test_pickle_and_deepcopy(tok):
    import copy
    import pickle

    for clone in (pickle.loads(pickle.dumps(tok)), copy.deepcopy(tok)):
        assert type(clone) is type(tok) and clone == tok
        assert clone.encode(SAMPLES[3]) == tok.encode(SAMPLES[3])


@pytest.mark.parametrize("seed", range(40))
def test_text_segments_are_the_stream_cut_at_safe_cuts(seed):
    """iter_text_segments: the pieces' text, whole, in segments that end at safe cuts of the stream and
    pre-tokenize as the joined text does; pieces big and tiny, with cuts inside them, across them, or
    none. Tiny pieces with cuts only across them still come out in segments of ~2 x block_size."""
    rng = random.Random(seed)
    pat = regex.compile(PATTERNS["gpt4"])
    alphabet = ["a", "Z", "é", "中", " ", "  ", "\n", "\n\n", "1", "!", "'s", "\u3000"]
    pieces = [
        "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 3, 40, 300]))) for _ in range(rng.randint(0, 40))
    ]
    block = rng.choice([1, 10, 64, 500])
    segments = list(iter_text_segments(iter(pieces), block))
    text = "".join(pieces)
    assert "".join(segments) == text and all(segments)
    assert [t for seg in segments for t in pat.findall(seg)] == pat.findall(text)
    start = 0
    for seg in segments[:-1]:  # a segment ends at a safe cut of the stream
        start += len(seg)
        assert text[start - 1].isalpha() and text[start].isspace(), (seg[-5:], text[start : start + 5])
    tiny = list(iter_text_segments(iter(["a", " "] * 500), 10))
    assert "".join(tiny) == "a " * 500 and max(map(len, tiny)) <= 21
