"""Corpora in every format (data/formats.py): .txt, .jsonl, .parquet, .gz/.zst, folders mixing them.

The promise: the same corpus as .txt, .jsonl, .jsonl.gz, .jsonl.zst or .parquet gives the same
documents, trains the same merges (C++ and reference) and prepares the same shards; bad input is
one line naming the file (and line, field, column), or a warning with counts, never a traceback.
Also issue 16 §5: binary data is refused, invalid UTF-8 warns once per file with the count, and a
corpus too small to split says so, through `train`, `tokenizer train` and `prepare` alike.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.data import corpus as C
from tinyllm.data import formats as F
from tinyllm.data.formats import ReadOptions
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Texts, Tokenizer
from tinyllm.tokenizer.inputs import CorpusWarning
from tinyllm.tokenizer.reference import Tokenizer as ReferenceTokenizer

zstandard = pytest.importorskip("zstandard")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ENV = {"OMP_NUM_THREADS": "1"}
FORMATS = ["txt", "txt.gz", "txt.zst", "jsonl", "jsonl.gz", "jsonl.zst", "parquet"]
WORDS = [
    "the",
    "lord",
    "said",
    "unto",
    "moses",
    "and",
    "it",
    "came",
    "to",
    "pass",
    "café",
    "naïve",
    "日本語",
    "жизнь",
    "🙂",
    "don't",
    "I'll",
    "42",
    "1999",
    "x.y",
    "==",
    "{}",
    "()",
]


def random_documents(seed: int, n: int = 1500) -> list[str]:
    """Paragraphs (no blank line inside) of random words, single newlines, odd spacing, digits, emoji."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 40))]
        for i in range(len(words) - 1):
            words[i] += rng.choice([" ", " ", " ", "  ", "\n", ", ", "\t"])
        docs.append(("  " if rng.random() < 0.05 else "") + "".join(words))
    return docs


def write_corpus(docs: list[str], path: Path, fmt: str, field: str = "text") -> Path:
    """docs as one file of format fmt: .txt is each document + a blank line; a record is one document."""
    txt = "".join(d + "\n\n" for d in docs).encode()
    jsonl = "".join(json.dumps({"id": i, field: d}, ensure_ascii=False) + "\n" for i, d in enumerate(docs)).encode()
    path = path.with_name(f"{path.name}.{fmt}")
    raw = txt if fmt.startswith("txt") else jsonl
    if fmt == "parquet":
        pq.write_table(pa.table({"id": list(range(len(docs))), field: docs}), path, row_group_size=97)
    elif fmt.endswith(".gz"):
        path.write_bytes(gzip.compress(raw))
    elif fmt.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.fixture(scope="module", params=[11, 12])  # two fresh corpora
def corpora(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"formats{request.param}")
    docs = random_documents(request.param)
    return docs, {fmt: write_corpus(docs, d / "corpus", fmt) for fmt in FORMATS}


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tok.txt"
    Tokenizer.train(Texts(random_documents(5, 400)), vocab_size=360, show_progress=False).save(path)
    return path


# ---------------------------------------------------------------------------------------------------
# the same corpus in every format
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_documents(corpora, fmt, monkeypatch):
    docs, files = corpora
    want = [d + "\n\n" for d in docs]
    assert C.load_documents(files[fmt]) == want
    for block in (1 << 20, 4093):  # small blocks cut records, characters and compressed frames
        monkeypatch.setattr(C, "READ_BLOCK", block)
        got = list(C.stream_document_blocks(files[fmt]))
        assert [d for docs, _ in got for d in docs] == want, block
        assert sum(n for _, n in got) == files[fmt].stat().st_size  # (Parquet: shares by rows)


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_every_format_trains_identical_merges(corpora, impl):
    _, files = corpora
    cls = Tokenizer if impl == "native" else ReferenceTokenizer
    want = cls.train(files["txt"], vocab_size=370, show_progress=False).merges
    assert len(want) == 370 - 260
    for fmt in FORMATS[1:]:
        assert cls.train(files[fmt], vocab_size=370, show_progress=False).merges == want, fmt
    if impl == "native":  # and the C++ trainer agrees with the reference
        assert ReferenceTokenizer.train(files["jsonl.zst"], vocab_size=370, show_progress=False).merges == want


def test_cli_tokenizer_train_is_the_same_in_every_format(corpora, tmp_path, run_cli):
    _, files = corpora
    saved = {}
    for fmt in ("txt", "jsonl.gz", "parquet"):
        out = tmp_path / f"{fmt}.tok"
        r = run_cli("tokenizer", "train", "--data", files[fmt], "--vocab_size", 500, "--out", out, env=ENV)
        assert r.returncode == 0, r.stderr
        saved[fmt] = out.read_text()
    assert saved["jsonl.gz"] == saved["txt"] and saved["parquet"] == saved["txt"]


# Documents whose text read raw and cut into documents differ: blank runs of 3+ lines, whitespace-only
# paragraphs (Unicode spaces too), CRLF, paragraphs opening with spaces (gpt2 joins those to the break).
AWKWARD_DOCS = [
    "first line\r\nsecond line",
    "  indented after a blank line",
    "\u3000full-width space opens this one",
    "ends with spaces   ",
    "tab\tinside, then \u2028 a line separator",
    "中文的段落。",
]


def _awkward_corpus(tmp_path: Path, fmt: str, n: int = 400) -> Path:
    rng = random.Random(fmt)
    docs = [
        rng.choice(AWKWARD_DOCS) + " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        for _ in range(n)
    ]
    if fmt.startswith("txt"):  # a text file's paragraphs, with odd breaks between them
        breaks = ["\n\n", "\n\n\n\n", "\r\n\r\n", "\n \u3000\n\n", "\n\n  \n\n"]
        raw = "\ufeff" + "".join(d + rng.choice(breaks) for d in docs)
        path = tmp_path / f"awkward.{fmt}"
        data = raw.encode()
        path.write_bytes(
            gzip.compress(data)
            if fmt.endswith(".gz")
            else zstandard.ZstdCompressor().compress(data)
            if fmt.endswith(".zst")
            else data
        )
        return path
    return write_corpus([d + rng.choice(["", "\n\n\n", "\n \n"]) for d in docs], tmp_path / "awkward", fmt)


@pytest.mark.parametrize("fmt", ["txt", "txt.gz", "txt.zst", "parquet", "jsonl", "jsonl.zst"])
def test_raw_blocks_of_every_format_are_its_documents_as_bytes(tmp_path, fmt):
    """stream_raw_text_blocks reads text of any compression and Parquet: its blocks cut into the
    documents load_documents reads, each block valid UTF-8 comes as bytes ("\r" normalised as bytes,
    not decoded to a str), whatever the read size."""
    f = _awkward_corpus(tmp_path, fmt)
    want = C.load_documents(f)
    for block in (1, 7, 4096, 1 << 20):
        blocks = list(C.stream_raw_text_blocks(f, block))
        assert [d for t, _ in blocks for d in C.paragraphs(t)] == want, block
        assert all(type(t) is bytes and b"\r" not in t for t, _ in blocks), block
        assert C.text_blocks(f, F.DEFAULT, block).__name__ == "stream_raw_text_blocks"


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_cli_tokenizer_train_streams_the_documents_train_and_prepare_see(tmp_path, run_cli, pattern):
    """`tinyllm tokenizer train` on a folder mixing formats streams it (tokenizer.Paragraphs) and trains
    exactly what the documents load_documents reads train to, not the files' raw text (which differs
    here: the check would pass on a corpus where the two agree)."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for fmt in ("txt", "txt.zst", "jsonl.gz", "parquet"):
        _awkward_corpus(tmp_path, fmt).rename(folder / f"part.{fmt}")
    docs = C.load_documents(folder)
    want = Tokenizer.train(Texts(docs), vocab_size=420, pattern=pattern, show_progress=False)
    raw = Tokenizer.train(folder, vocab_size=420, pattern=pattern, show_progress=False)
    assert raw.merges != want.merges
    out = tmp_path / "tok.txt"
    r = run_cli(
        "tokenizer", "train", "--data", folder, "--vocab_size", 420, "--pattern", pattern, "--out", out, env=ENV
    )
    assert r.returncode == 0, r.stderr
    assert Tokenizer.load(out).merges == want.merges
    assert (
        ReferenceTokenizer.train(
            C.stream_paragraphs(folder), vocab_size=420, pattern=pattern, show_progress=False
        ).merges
        == want.merges
    )


@pytest.mark.parametrize("fmt, one_paragraph", [("txt", False), ("jsonl.gz", False), ("txt", True), ("txt.zst", True)])
def test_cli_tokenizer_train_never_holds_the_corpus(tmp_path, monkeypatch, fmt, one_paragraph):
    """What the CLI trains from holds a few read blocks at a time, not the corpus: Python's allocations
    peak the same on a corpus 4x as long (loading the documents first grew with it, to 9x the text).
    (A block is what one read gives: 1 MB of a file, or what 1 MB of a compressed one decompresses to.)
    Also for a corpus without a blank line, one document per line, which is one paragraph: it is cut
    open (OpenBlock) once 4 MB of it is held (1 MB here, so that both sizes hold the most they will),
    and trains what its one document trains."""
    import tracemalloc

    from tinyllm.cli.tokenizer import training_documents

    monkeypatch.setattr(C, "OPEN_AFTER", 1 << 20)

    docs = random_documents(3, 30_000)  # ~3.3 MB of text
    peaks = []
    for copies in (2, 8):
        text = docs * copies
        f = write_corpus(["\n".join(text)] if one_paragraph else text, tmp_path / f"x{copies}", fmt)
        tracemalloc.start()
        try:
            tok = Tokenizer.train(training_documents(str(f), "text", "fail"), vocab_size=300, show_progress=False)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert len(tok.merges) == 40
        if one_paragraph and copies == 2:
            assert len(C.load_documents(f)) == 1
            assert tok.merges == Tokenizer.train(Texts(C.load_documents(f)), vocab_size=300, show_progress=False).merges
    assert peaks[1] < 1.3 * peaks[0], (peaks, sum(len(d.encode()) + 2 for d in docs))


def _documents_of_blocks(blocks) -> list[str]:
    """paragraphs of stream_raw_text_blocks' blocks, an OpenBlock's text joined to what goes on with it."""
    from tinyllm.tokenizer.inputs import OpenBlock

    docs, carry = [], ""
    for b, _ in blocks:
        text = b.text if type(b) is OpenBlock else b
        text = carry + (text.decode() if isinstance(text, bytes) else text)
        carry = text if type(b) is OpenBlock else ""
        if not carry:
            docs += C.paragraphs(text)
    assert not carry
    return docs


@pytest.mark.parametrize("fmt", ["txt", "txt.gz"])  # (.zst decompresses 128 KB blocks: too coarse here)
def test_a_paragraph_longer_than_open_after_is_cut_open(tmp_path, fmt):
    """With open_after, a paragraph held past that is cut open (before a space or newline after a letter):
    the blocks stay near open_after whatever the paragraph's length, and their documents, each
    OpenBlock joined to what goes on with it, are load_documents's; without it the paragraph is one block.
    (Text files only: a JSON Lines or Parquet record's text comes whole from the reader, and its paragraphs
    are no longer than it.)"""
    from tinyllm.tokenizer.inputs import OpenBlock

    long = "\n".join(random_documents(7, 2000)).replace("\n\n", "\n")
    f = write_corpus(["intro", long, "middle words", long + " tail", "end"], tmp_path / "long", fmt)
    want = C.load_documents(f)
    assert max(len(d) for d in want) > 50_000
    for block in (7, 4096):
        blocks = list(C.stream_raw_text_blocks(f, block, open_after=8192))
        assert _documents_of_blocks(blocks) == want, block
        opened = [len(b.text) for b, _ in blocks if type(b) is OpenBlock]
        # (a read is at most 4096 bytes, or what 4096 compressed bytes decompress to; the first 64 KB
        # come at once, for the check for binary data)
        assert len(opened) > 8 and sorted(opened)[len(opened) // 2] < 8192 + 32 * 1024, (block, opened)
        assert max(opened + [len(b) for b, _ in blocks if type(b) is not OpenBlock]) < 100_000 < max(map(len, want))
        whole = list(C.stream_raw_text_blocks(f, block))
        assert not any(type(b) is OpenBlock for b, _ in whole) and _documents_of_blocks(whole) == want


def _shards(out: Path) -> dict:
    meta = json.loads((out / "meta.json").read_text())
    ids = {
        s: np.concatenate([np.fromfile(out / f, dtype=meta["dtype"]) for f in meta[f"{s}_shards"]])
        for s in ("train", "val")
    }
    return {"ids": ids, "docs": (meta["train_documents"], meta["val_documents"]), "shards": len(meta["train_shards"])}


def test_every_format_prepares_identical_shards(corpora, tok_file, tmp_path):
    from tinyllm.data.prepare import prepare

    docs, files = corpora
    got = {}
    for fmt in FORMATS:
        prepare([str(files[fmt])], tok_file, tmp_path / fmt, shard_tokens=5000, workers=2, progress=False)
        got[fmt] = _shards(tmp_path / fmt)
    want = got["txt"]
    tok = Tokenizer.load(tok_file)
    assert sum(want["docs"]) == len(docs) and want["shards"] > 2
    assert len(want["ids"]["train"]) + len(want["ids"]["val"]) == sum(len(tok.encode(d + "\n\n")) for d in docs)
    for fmt in FORMATS[1:]:
        assert got[fmt]["docs"] == want["docs"], fmt
        for split in ("train", "val"):
            assert np.array_equal(got[fmt]["ids"][split], want["ids"][split]), (fmt, split)


def test_a_folder_may_mix_formats(tmp_path):
    docs = random_documents(21, 300)
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    parts = {"a": "txt", "b": "jsonl.zst", "c": "parquet", "sub/d": "txt.gz", "sub/e": "jsonl"}
    for i, (name, fmt) in enumerate(parts.items()):
        write_corpus(docs[i * 60 : (i + 1) * 60], folder / name, fmt)
    (folder / "README.md").write_text("not a corpus file")
    (folder / "qa.json").write_text("[]")
    want = [d + "\n\n" for d in docs]
    assert C.load_documents(folder) == want
    flat = tmp_path / "flat.txt"
    flat.write_text("".join(want))
    assert Tokenizer.train(folder, vocab_size=360, show_progress=False).merges == (
        Tokenizer.train(flat, vocab_size=360, show_progress=False).merges
    )


def test_text_field_and_records_with_blank_lines(tmp_path):
    """--text_field picks the field; a record with blank lines reads as the paragraphs it holds."""
    f = tmp_path / "c.jsonl"
    f.write_text('{"body": "one\\n\\ntwo", "text": 3}\n\n{"body": "three\\r\\nfour\\n"}\n')
    assert C.load_documents(f, ReadOptions(text_field="body")) == ["one\n\n", "two\n\n", "three\nfour\n\n"]
    with pytest.raises(TinyLLMError, match=r"c\.jsonl: line 1: field 'text' is a number, not a string"):
        C.load_documents(f)


def test_jsonl_text_corpus_is_not_taken_for_qa(tmp_path):
    from tinyllm.data.qa import is_qa_file

    text, qa = tmp_path / "text.jsonl", tmp_path / "qa.jsonl"
    text.write_text('{"text": "a question: why?"}\n')
    qa.write_text('{"question": "q", "answer": "a"}\n')
    assert not is_qa_file(text) and is_qa_file(qa) and is_qa_file(tmp_path / "x.json")


# ---------------------------------------------------------------------------------------------------
# bad input: one line, or a warning with counts
# ---------------------------------------------------------------------------------------------------
def _jsonl_with_bad_lines(tmp_path: Path) -> Path:
    f = tmp_path / "bad.jsonl"
    f.write_text(
        '{"text": "good one"}\n{"text": "good two"\nnot json at all\n{"title": "no text"}\n{"text": "good three"}\n[1]\n'
    )
    return f


@pytest.mark.parametrize("command", ["tokenizer train", "prepare"])
def test_bad_jsonl_records_fail_naming_file_line_and_field(tmp_path, run_cli, tok_file, command):
    f = _jsonl_with_bad_lines(tmp_path)
    args = ["--data", f, "--out", tmp_path / "o"] + (["--tokenizer", tok_file] if command == "prepare" else [])
    r = run_cli(*command.split(), *args, env=ENV)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {f}: line 2: not JSON (")
    assert "--bad_records skip" in r.stderr
    f.write_text('{"text": "good"}\n{"title": "no text"}\n')
    r = run_cli(*command.split(), *args, env=ENV)
    assert r.returncode == 2
    assert f"error: {f}: line 2: no field 'text' (it has: title)" in r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["tokenizer train", "prepare"])
def test_bad_records_skip_warns_with_counts(tmp_path, run_cli, tok_file, command):
    f = _jsonl_with_bad_lines(tmp_path)
    args = ["--data", f, "--out", tmp_path / "o", "--bad_records", "skip", "--vocab_size", 270]
    if command == "prepare":
        args = args[:-2] + ["--tokenizer", tok_file, "--progress", "false"]
    r = run_cli(*command.split(), *args, env=ENV)
    assert r.returncode == 0, r.stderr
    warns = [ln for ln in r.stderr.splitlines() if "skipped" in ln]
    assert warns == [
        f"warning: {f}: skipped 4 of 6 records: 2 not JSON (first at line 2), "
        "1 without 'text' (first at line 4), 1 not a JSON object (first at line 6)"
    ]


def test_skipped_records_leave_the_good_ones(tmp_path):
    f = _jsonl_with_bad_lines(tmp_path)
    with pytest.warns(CorpusWarning, match="skipped 4 of 6 records"):
        docs = C.load_documents(f, ReadOptions(bad_records="skip"))
    assert docs == ["good one\n\n", "good three\n\n"]


def _record_outcome(loads, line: str):
    """What the JSON Lines reader makes of a line: its text, or why it has none."""
    bad = F.BadRecords(Path("x.jsonl"), ReadOptions(bad_records="fail"), "line")
    try:
        return "text", F._record_text(loads(line), "text", 1, bad)
    except ValueError as e:
        return "not JSON", getattr(e, "msg", str(e))
    except TinyLLMError as e:
        return "bad record", str(e)


def _json_outcome(line: str):
    """_record_outcome of json.loads alone, its RecursionError (nesting too deep) read as loads_record's ValueError."""
    try:
        return _record_outcome(json.loads, line)
    except RecursionError:
        return "not JSON", "nested too deeply"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["text", "t", "a", ""]), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=600, deadline=None)
@given(
    value=st.one_of(_JSON, st.dictionaries(st.sampled_from(["text", "id", "meta"]), _JSON, max_size=4)),
    ascii_only=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list('{}[]",:\\ 0eE-.u\ud800nNa'))), max_size=3),
)
def test_a_record_reads_as_json_reads_it(value, ascii_only, edits):
    """loads_record (orjson, and json where orjson refuses) against json.loads alone, on records and
    on records with a few characters changed: the same text, or the same reason for none."""
    line = json.dumps(value, ensure_ascii=ascii_only)
    for at, ch in edits:
        at %= len(line) + 1
        line = line[:at] + ch + line[at + 1 :]
    assert _record_outcome(F.loads_record, line) == _json_outcome(line)


def test_json_edge_cases_read_as_json_reads_them():
    """What orjson refuses and json reads (NaN, 1e400, a lone surrogate, deep nesting), and what json
    cannot read at all (nesting past the recursion limit: a bad record, not a traceback)."""
    for line in [
        '{"text": "a\\ud800b"}',
        '{"text": "x", "n": NaN}',
        '{"text": "x", "f": 1e400}',
        '{"text": "x", "n": 123456789012345678901234567890}',
        '{"text": "a", "text": "b"}',
        '{"a":' * 1500 + '{"text": "deep"}' + "}" * 1500,
        '{"text": ' + "[" * 1500 + "]" * 1500 + "}",
    ]:
        assert _record_outcome(F.loads_record, line) == _json_outcome(line), line[:40]
    deep = "[" * 200_000 + "]" * 200_000
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(ValueError, match="nested too deeply"):
        F.loads_record(deep)


_LINES = [
    b'{"text": "plain"}',
    '{"text": "caf\u00e9 \u4e2d\u6587 \U0001f642", "id": 3}'.encode(),
    '{"text": "raw é 中 🙂"}'.encode(),
    b'{"text": "bad \xff byte"}',  # invalid UTF-8 inside the string
    b'\xc3{"text": "x"}',  # ... outside it
    b'{"text": "cut \xe4\xb8"}',
    b"",
    b"   ",
    b"\r",
    "\u2028".encode(),  # blank to str.isspace, not JSON whitespace
    "\x85".encode(),
    b'{"text": "crlf"}\r',
    b"\xef\xbb\xbf" + b'{"text": "a BOM mid-stream"}',
    b"not json",
    b'{"title": "no text"}',
    b'{"text": 5}',
    b"[1, 2]",
    b'{"text": "x", "n": NaN}',
    b'{"text": "a\\ud800b"}',
    b'{"text": "a", "text": "b"}',
    b'{"a":' * 1100 + b"1" + b"}" * 1100,
]


def _random_jsonl_file(rng: random.Random, lines: list[bytes], tmp_path: Path):
    """lines joined into a file, with or without a BOM and a last newline, plain or gzip (whole or
    truncated) -> (path, the bytes, its kind, a block size to read it in: 1 byte to 64 KB)."""
    data = (b"\xef\xbb\xbf" if rng.random() < 0.3 else b"") + b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b"")
    kind = rng.choice(["jsonl", "jsonl.gz", "truncated"])
    f = tmp_path / ("c.jsonl" if kind == "jsonl" else "c.jsonl.gz")
    if kind == "jsonl":
        f.write_bytes(data)
    else:
        packed = gzip.compress(data)
        f.write_bytes(packed if kind == "jsonl.gz" else packed[: rng.randint(10, max(11, len(packed) - 9))])
    return f, data, kind, rng.choice([1, 7, 64, 1000, 65536])


@pytest.mark.parametrize("seed", range(60))
def test_jsonl_bytes_reader_equals_the_str_reader(tmp_path, monkeypatch, seed):
    """The bytes reader (orjson on undecoded lines) against the str reader (decode, split, json.loads)
    on files of valid, blank, bad and invalid-UTF-8 lines, with or without a BOM and a last newline,
    plain or gzip (whole or truncated), read in blocks of 1 byte to 64 KB: the same texts, warnings
    and first error."""
    rng = random.Random(seed)
    lines = [rng.choice(_LINES) for _ in range(rng.randint(0, 30))]
    f, data, kind, block = _random_jsonl_file(rng, lines, tmp_path)

    def read(loads, policy: str):
        monkeypatch.setattr(F, "_orjson_loads", loads)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                got = "".join(t for t, _ in F.read_chunks(f, ReadOptions(bad_records=policy), block))
            except TinyLLMError as e:
                got = f"error: {e}"
        return got, [str(x.message) for x in w]

    real = F._orjson_loads
    if real is None:
        pytest.skip("orjson is not installed (the 'data' extra)")
    for policy in ("skip", "fail"):
        assert read(real, policy) == read(None, policy), (policy, data[:200], kind, block)


@pytest.mark.parametrize("seed", range(40))
def test_jsonl_raw_blocks_are_the_documents_of_the_str_reader(tmp_path, seed):
    """text_blocks of a JSON Lines file (formats.read_jsonl_utf8: C++-decided lines as bytes, the rest
    from the Python reader, lone surrogates kept) against load_documents, on the awkward files above:
    the same documents, warnings and first error."""
    if not F.has_orjson():
        pytest.skip("orjson is not installed (the 'data' extra)")
    rng = random.Random(seed)
    lines = [rng.choice(_LINES) for _ in range(rng.randint(0, 30))]
    lines += rng.sample(
        [b'{"text": "line\\r\\nbreaks\\r\\r\\n\\n  \\n x"}', b'{"text": "\\ud800 \\n\\n b"}'], k=rng.randint(0, 2)
    )
    rng.shuffle(lines)
    f, data, kind, block = _random_jsonl_file(rng, lines, tmp_path)

    def documents(read, policy: str):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                got = read(ReadOptions(bad_records=policy))
            except TinyLLMError as e:
                got = f"error: {e}"
        return got, [str(x.message) for x in w]

    def blocks(options):
        return [d for b, _ in C.text_blocks(f, options, block) for d in C.paragraphs(b)]

    for policy in ("skip", "fail"):
        want = documents(lambda o: C.load_documents(f, o), policy)
        if isinstance(want[0], str) and want[0].endswith("corpus is empty (no non-blank text)"):
            want = ([], want[1])  # (load_documents' own error: a stream of no documents is just that)
        assert documents(blocks, policy) == want, (policy, data[:200], kind, block)


# --- the C++ JSON Lines fast path (csrc/jsonl_text.h): what it decides, Python decides the same ---
def _cpp_line(line: bytes):
    from tinyllm import _bpe

    return _bpe.jsonl_line(line, "text")


def _python_line(line: bytes):
    """The reference: formats._line_text on the decoded line -> ("text", text) | ("blank", None) |
    ("record", outcome) for anything else (the cases C++ must leave)."""
    bad = F.BadRecords(Path("x.jsonl"), ReadOptions(bad_records="fail"), "line")
    try:
        text = F._line_text(line.decode("utf-8", "replace"), 1, "text", bad)
    except TinyLLMError as e:
        return "record", str(e)
    if text is None and bad.seen == 0:
        return "blank", None
    return "text", text


@settings(max_examples=800, deadline=None)
@given(
    value=st.one_of(_JSON, st.dictionaries(st.sampled_from(["text", "id", "meta"]), _JSON, max_size=4)),
    ascii_only=st.booleans(),
    spaces=st.sampled_from(["", " ", "\t", "\r", " \r"]),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(list('{}[]",:\\ 0eE-.u\ud800\x00\x1f\u3000nNa'))),
        max_size=3,
    ),
)
def test_cpp_jsonl_line_decides_only_what_json_decides_the_same(value, ascii_only, spaces, edits):
    """A line the C++ reader takes ("text" or "blank") is one the Python reader takes the same way,
    with the same text; what it leaves ("undecided") Python decides. Records as json.dumps writes them,
    then with a few characters changed (lone surrogates written the surrogatepass way: invalid UTF-8)."""
    line = spaces + json.dumps(value, ensure_ascii=ascii_only) + spaces
    for at, ch in edits:
        at %= len(line) + 1
        line = line[:at] + ch + line[at + 1 :]
    raw = line.replace("\n", " ").encode("utf-8", "surrogatepass")
    kind, text = _cpp_line(raw)
    if kind == "undecided":
        return
    want = _python_line(raw)
    assert (kind, None if text is None else text.decode()) == want, raw[:200]


# raw pieces of a JSON string's inside: controls, quotes, escapes good, short and bad, lone surrogates
_STRING_PIECES = [
    "x",
    "\x00",
    "\x1f",
    "\x7f",
    '"',
    "\\",
    "\\\\",
    '\\"',
    "\\n",
    "\\/",
    "\\u00e9",
    "\\u12",
    "\\uZZZZ",
    "\\x",
    "\\ud83d\\ude42",
    "\\ud83d",
    "\\ude42",
    "\\ud83d\\u0041",
    "\ud800",
    "\u3000",
    "é",
    "🙂",
]


@settings(max_examples=600, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_STRING_PIECES), max_size=5),
    others=st.dictionaries(st.sampled_from(["id", "meta", "text"]), _JSON, max_size=2),
    last=st.booleans(),
)
def test_cpp_jsonl_line_reads_the_text_string_as_json_does(pieces, others, last):
    """The field's string itself, written raw: control characters, quotes, good, short and bad escapes,
    surrogate pairs and lone halves (as escapes and raw), before or after the other fields (one may
    be another "text"). What C++ takes, Python takes the same; the rest it leaves."""
    mark = "\ue000"
    record = {**others, "text": mark} if last else {"text": mark, **others}
    line = json.dumps(record, ensure_ascii=False).replace(mark, "".join(pieces), 1)
    raw = line.encode("utf-8", "surrogatepass")
    kind, text = _cpp_line(raw)
    if kind == "undecided":
        return
    assert (kind, text.decode()) == _python_line(raw), raw[:200]


def test_cpp_jsonl_line_takes_the_records_people_write_and_leaves_the_rest():
    """What a corpus holds is decided in C++ (json.dumps records, escaped or raw, CRLF, repeated fields,
    nesting); json's extensions, lone surrogates, invalid UTF-8, Unicode spaces and every bad record
    are left to Python, which reads them as it always has."""
    docs = random_documents(61, 200) + ["tab\there", 'quote " and \\ slash /', "\u2028 sep", "nul \x00 char"]
    for i, d in enumerate(docs):
        for ascii_only in (True, False):
            line = json.dumps({"id": i, "meta": {"tags": ["a", None, 1.5e-3]}, "text": d}, ensure_ascii=ascii_only)
            assert _cpp_line(line.encode()) == ("text", d.encode()), line
    taken = {
        b'{"text": "crlf"}\r': ("text", b"crlf"),
        b'{"text": "a", "text": "b"}': ("text", b"b"),
        b'{"te\\u0078t": "escaped key"}': ("text", b"escaped key"),
        b'{"text": "\\ud83d\\ude42 pair"}': ("text", "\U0001f642 pair".encode()),
        b"": ("blank", None),
        b" \t\r\x0b\x0c\x1c": ("blank", None),
    }
    for line, want in taken.items():
        assert _cpp_line(line) == want, line
        assert _python_line(line) == (want[0], None if want[1] is None else want[1].decode()), line
    left = [
        b'{"text": "x", "n": NaN}',
        b'{"text": "x", "n": -Infinity}',
        b'{"text": "a\\ud800b"}',
        b'{"text": "bad \xff byte"}',
        b"\xef\xbb\xbf" + b'{"text": "BOM"}',
        "\u3000".encode(),
        b"\x85",
        b'{"text": 5}',
        b'{"text": "a", "text": 5}',
        b'{"title": "no text"}',
        b"[1, 2]",
        b'"text"',
        b"not json",
        b'{"text": "x"} extra',
        b'{"text": "x",}',
        b'{"text": "raw \x01 control"}',
        b'{"text": "x", "n": 01}',
        b'{"text": "x", "n": 1.}',
        b'{"text": "bad \\q escape"}',
        b'{"a":' * 300 + b"1" + b"}" * 300 + b'{"text": "deep"}',
        b'{"text": "deep", "a": ' + b"[" * 300 + b"]" * 300 + b"}",
    ]
    for line in left:
        assert _cpp_line(line) == ("undecided", None), line


# records Python reads and C++ leaves to it, and blank lines
_GOOD_LINES_CPP_LEAVES = [
    b'{"text": "x", "n": NaN}',
    b'{"text": "a\\ud800b"}',
    b'{"text": "bad \xff byte"}',
    b'{"text": "cut \xe4\xb8"}',
    b'{"text": "deep", "a": ' + b"[" * 300 + b"]" * 300 + b"}",
    "\u2028".encode(),
    "\u3000 ".encode(),
    "\x85".encode(),
    b"",
    b" \r",
    b'{"text": "crlf"}\r',
    b'{"text": "a", "text": "b"}',
]


def _fast_pretokens(f: Path, policy_fail: bool = True):
    """The trainer's JSON Lines route (feed_jsonl + add_jsonl + add_stream_text) -> (pre-token counts
    or the error, warnings)."""
    from tinyllm import _bpe

    trainer = _bpe.Trainer("gpt4", 2)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            for text, _ in F.feed_jsonl(f, lambda lines: trainer.add_jsonl(lines, "text")):
                trainer.add_stream_text(text)
            trainer.add_bytes(b"", final=True)
            got = trainer.pretoken_counts()
        except TinyLLMError as e:
            got = f"error: {e}"
    return got, [str(x.message) for x in w]


def _reference_pretokens(f: Path):
    from tinyllm.tokenizer.reference import count_pretokens, to_utf8

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            got = {to_utf8(k): v for k, v in count_pretokens(f).items()}
        except TinyLLMError as e:
            got = f"error: {e}"
    return got, [str(x.message) for x in w]


@pytest.mark.parametrize("seed", range(40))
def test_fast_jsonl_route_counts_what_the_python_reader_counts(tmp_path, monkeypatch, seed):
    """Files of ordinary records among the lines C++ leaves (NaN, lone surrogates, invalid UTF-8, Unicode
    spaces, a BOM, deep nesting; bad records in a quarter of the files), plain, gzip or truncated gzip, read
    in blocks of 1 byte to 64 KB: the pre-token counts, warnings and first error equal the reference
    trainer's (its own Python reader)."""
    rng = random.Random(seed)
    docs = random_documents(seed, 60)
    pool = [json.dumps({"text": d}, ensure_ascii=rng.random() < 0.5).encode() for d in docs]
    pool += _GOOD_LINES_CPP_LEAVES
    if rng.random() < 0.25:
        pool.append(rng.choice([b'{"text": 5}', b"not json", b'\xc3{"text": "x"}']))
    lines = [rng.choice(pool) for _ in range(rng.randint(0, 80))]
    f, data, kind, block = _random_jsonl_file(rng, lines, tmp_path)
    monkeypatch.setattr(F, "READ_BLOCK", block)
    monkeypatch.setattr(F, "COMPRESSED_BLOCK", block)
    if F._orjson_loads is None:
        pytest.skip("orjson is not installed (the 'data' extra)")
    assert _fast_pretokens(f) == _reference_pretokens(f), (data[:300], kind, block)


def test_parquet_without_the_column(tmp_path, run_cli):
    f = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": [1, 2], "content": ["a", "b"]}), f)
    r = run_cli("tokenizer", "train", "--data", f, "--out", tmp_path / "t", env=ENV)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {f}: no column 'text' (columns: id, content); pick one with --text_field"
    )
    r = run_cli("tokenizer", "train", "--data", f, "--text_field", "id", "--out", tmp_path / "t", env=ENV)
    assert (
        r.stderr.strip().splitlines()[-1]
        == f"error: {f}: column 'id' holds int64, not text; pick a string column with --text_field"
    )
    r = run_cli(
        "tokenizer",
        "train",
        "--data",
        f,
        "--text_field",
        "content",
        "--vocab_size",
        262,
        "--out",
        tmp_path / "t",
        env=ENV,
    )
    assert r.returncode == 0, r.stderr


def test_parquet_is_read_in_batches_not_row_groups(tmp_path):
    """A row group of 48 MB of text is read a few MB at a time: pyarrow's pool (a fresh process's)
    peaks well below the group (reading the group whole peaked at 3.7x it), and the texts are the rows'."""
    import subprocess
    import sys

    rng = random.Random(4)
    base = " ".join(rng.choice(WORDS) for _ in range(300_000))
    rows = [base[a : a + rng.randint(1000, 9000)] for a in (rng.randrange(len(base) - 9000) for _ in range(10_000))]
    f = tmp_path / "one_group.parquet"
    pq.write_table(pa.table({"text": rows}), f, row_group_size=len(rows), use_dictionary=False, compression="zstd")
    assert pq.ParquetFile(f).num_row_groups == 1 and sum(map(len, rows)) > 40 << 20
    script = (
        "import sys, hashlib, pyarrow as pa\n"
        "from pathlib import Path\n"
        "from tinyllm.data import formats\n"
        "h, n = hashlib.sha256(), 0\n"
        "for data, raw in formats.read_utf8(Path(sys.argv[1])):\n"
        "    h.update(data); n += raw\n"
        "print(pa.default_memory_pool().max_memory(), h.hexdigest(), n)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, f], capture_output=True, text=True, env={**os.environ, **ENV})
    assert r.returncode == 0, r.stderr
    peak, digest, raw = r.stdout.split()
    assert digest == hashlib.sha256("".join(t + "\n\n" for t in rows).encode()).hexdigest()
    assert int(raw) == f.stat().st_size
    assert int(peak) < sum(map(len, rows)) // 2, int(peak) >> 20  # (18 MB here; reading the group: 176 MB)


def test_parquet_nulls_are_bad_records(tmp_path):
    f = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": ["a", None, "b", None]}), f, row_group_size=3)
    with pytest.raises(TinyLLMError, match=r"n\.parquet: row 1: 'text' is null"):
        C.load_documents(f)
    with pytest.warns(CorpusWarning, match=r"skipped 2 of 4 records: 2 with a null 'text' \(first at row 1\)"):
        assert C.load_documents(f, ReadOptions(bad_records="skip")) == ["a\n\n", "b\n\n"]


@pytest.mark.parametrize("fmt", ["gz", "zst"])
def test_a_compressed_read_is_decompressed_in_pieces(tmp_path, fmt):
    """A file that compresses very well comes out in pieces, not all that a read stands for at once:
    256 MB of one letter is 8 KB of zstd and 255 KB of gzip, one 1 MB read each, which the reader
    decompressed in one call (a small file could so ask for gigabytes). Now gzip pieces are at most the
    read size (zlib's max_length) and zstd's at most what formats.ZSTD_SLICE of input can stand for."""
    path, total = tmp_path / f"one_letter.txt.{fmt}", 256 << 20
    with (
        gzip.open(path, "wb") if fmt == "gz" else zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb"))
    ) as z:
        for _ in range(total >> 20):
            z.write(b"a" * (1 << 20))
    assert path.stat().st_size < F.COMPRESSED_BLOCK
    cut = F._Truncation()
    sizes = [len(b) for b, _ in F._raw_blocks(path, F.kind_of(path), 1 << 20, cut)]
    assert sum(sizes) == total and cut.decompressed is None
    assert max(sizes) <= (1 << 20 if fmt == "gz" else F.ZSTD_SLICE // 4 * (128 << 10)) < total // 2, max(sizes)


@pytest.mark.parametrize("fmt", ["txt.gz", "jsonl.gz", "txt.zst", "jsonl.zst"])
def test_truncated_compressed_file_keeps_what_was_read_and_says_so(tmp_path, fmt):
    docs = random_documents(31, 3000)
    f = write_corpus(docs, tmp_path / "c", fmt)
    full = f.read_bytes()
    f.write_bytes(full[: len(full) * 2 // 3])
    with pytest.warns(CorpusWarning) as record:
        got = C.load_documents(f)
    msgs = [str(w.message) for w in record]
    assert len(msgs) == 1 and msgs[0].startswith(f"{f}: the ") and "stream is truncated" in msgs[0], msgs
    assert "kept the" in msgs[0]
    want = [d + "\n\n" for d in docs]
    assert 0 < len(got) < len(want)
    assert got[:-1] == want[: len(got) - 1]  # a prefix (the last document may be cut)


def test_truncated_file_through_prepare_is_a_warning(tmp_path, run_cli, tok_file):
    f = write_corpus(random_documents(32, 3000), tmp_path / "c", "jsonl.zst")
    f.write_bytes(f.read_bytes()[:-100])
    r = run_cli(
        "prepare", "--data", f, "--tokenizer", tok_file, "--out", tmp_path / "o", "--progress", "false", env=ENV
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {f}: the zstd stream is truncated"), r.stderr


UNREADABLE = {  # file name -> (content, what the error says)
    "data.bin": (random.Random(1).randbytes(5000), "cannot tell what kind of file this is"),
    "corpus.txt.bz2": (b"BZh91AY&SY", r"\.bz2 files are not read; decompress it"),
    "corpus.jsonl.gz": (b"plain text, not gzip\n", r"not gzip data \(its bytes start b'plai'\)"),
    "corpus.txt.gz": (gzip.compress(b"hello " * 1000)[:20] + b"\xff" * 50, "corrupt gzip data"),
    "corpus.parquet": (b"PAR1 not really", "not a readable Parquet file"),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_a_file_that_cannot_be_read_is_one_line(tmp_path, run_cli, name):
    content, message = UNREADABLE[name]
    f = tmp_path / name
    f.write_bytes(content)
    r = run_cli("tokenizer", "train", "--data", f, "--out", tmp_path / "t", env=ENV)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith(f"error: {f}: "), r.stderr
    assert re.search(message, last[0]), last[0]


# ---------------------------------------------------------------------------------------------------
# issue 16 §5: readable but wrong, through train / tokenizer train / prepare
# ---------------------------------------------------------------------------------------------------
SMALL_TRAIN = [
    "--d_model",
    "16",
    "--n_layers",
    "1",
    "--n_heads",
    "2",
    "--d_ff",
    "32",
    "--context_length",
    "8",
    "--vocab_size",
    "270",
    "--batch_size",
    "2",
    "--max_iters",
    "1",
    "--eval_interval",
    "1",
    "--eval_iters",
    "1",
    "--sample_tokens",
    "0",
    "--device",
    "cpu",
    "--progress",
    "false",
]
COMMANDS = ["train", "tokenizer train", "prepare"]


def _run(run_cli, command: str, data: Path, tmp_path: Path, tok_file: Path):
    out = tmp_path / "out"
    if command == "train":
        return run_cli("train", "--data", data, "--out_dir", out, *SMALL_TRAIN, env=ENV)
    if command == "prepare":
        return run_cli("prepare", "--data", data, "--tokenizer", tok_file, "--out", out, "--progress", "false", env=ENV)
    return run_cli("tokenizer", "train", "--data", data, "--vocab_size", 270, "--out", tmp_path / "tok.txt", env=ENV)


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(2).randbytes(3000)
RANDOM = bytes(b or 1 for b in random.Random(3).randbytes(70000))  # no NUL: caught by its invalid UTF-8


BINARY = {  # file name -> (content, what the error says)
    "random.txt": (RANDOM, r"looks like binary data, not UTF-8 text \(\d+% of its first 65,536 bytes are not UTF-8\)"),
    "image.txt": (PNG, r"looks like binary data, not UTF-8 text \(a NUL byte at offset 8\)"),
    "weights.bin": (PNG[8:], r"cannot tell what kind of file this is: not UTF-8 text \(a NUL byte at offset 0\)"),
    "data.jsonl": (b'{"text": "a"}\n' + b"\x00" * 100, r"looks like binary data, not UTF-8 JSON Lines"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_data_is_refused(tmp_path, run_cli, tok_file, command, name):
    content, why = BINARY[name]
    f = tmp_path / name
    f.write_bytes(content)
    r = _run(run_cli, command, f, tmp_path, tok_file)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith(f"error: {f}: ")
    assert re.search(why, errors[0]), errors[0]
    assert not (tmp_path / "out" / "latest.pt").exists() and not (tmp_path / "out" / "meta.json").exists()


def _invalid_utf8_files(tmp_path: Path) -> list[tuple[Path, int]]:
    text = "\n\n".join(" ".join(random_documents(41, 200)[i].split()) for i in range(200)) + "\n"
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(("Déjà vu, señor, ça va très bien.\n\n" * 3).encode("latin-1") + text.encode())
    cut = tmp_path / "cut.txt"
    data = (text + "日本").encode()
    cut.write_bytes(data[:-1])  # cut mid-character
    return [(latin1, 3 * 5), (cut, 1)]


@pytest.mark.parametrize("command", COMMANDS)
def test_invalid_utf8_warns_once_per_file_with_the_count(tmp_path, run_cli, tok_file, command):
    for f, count in _invalid_utf8_files(tmp_path):
        r = _run(run_cli, command, f, tmp_path, tok_file)
        assert r.returncode == 0, r.stderr[-3000:]
        want = f"warning: corpus file {f} is not valid UTF-8: {count} invalid byte sequence(s) read as U+FFFD"
        assert [ln for ln in r.stderr.splitlines() if "UTF-8" in ln] == [want], r.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_corpus_too_small_to_split_says_so(tmp_path, run_cli, tok_file, command):
    f = tmp_path / "one.txt"
    f.write_text("just one line of text and nothing else\n")
    r = _run(run_cli, command, f, tmp_path, tok_file)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if "nothing to hold out" in ln]
    if command == "tokenizer train":  # no split to make: nothing to say
        assert lines == []
    else:
        assert lines == [
            "warning: the corpus has only 1 document (paragraphs are split at blank lines): nothing to hold out, "
            "so validation uses the training text and measures memorisation"
        ], r.stderr


def test_a_latin1_file_is_still_read(tmp_path):
    (f, count), _ = _invalid_utf8_files(tmp_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        docs = C.load_documents(f)
    assert [str(x.message) for x in w] == [
        f"corpus file {f} is not valid UTF-8: {count} invalid byte sequence(s) read as U+FFFD"
    ]
    assert docs[0] == "D\ufffdj\ufffd vu, se\ufffdor, \ufffda va tr\ufffds bien.\n\n"
    assert F.sniff(f.read_bytes()) is None  # a few invalid bytes are text, not binary


def test_file_kinds():
    assert F.kind_of(Path("x.JSONL.ZST")) == F.Kind("jsonl", "zstd")
    assert F.kind_of(Path("x.ndjson")) == F.Kind("jsonl")
    assert F.kind_of(Path("x.txt.gz")) == F.Kind("text", "gzip")
    with pytest.raises(TinyLLMError, match="a Parquet file compresses itself"):
        F.kind_of(Path("x.parquet.gz"))
    assert [F.is_corpus_file(Path(n)) for n in ("a.txt", "a.jsonl.gz", "a.parquet", "a.md", "a.json", "a.gz")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(TinyLLMError, match="--bad_records must be 'fail' or 'skip'"):
        ReadOptions(bad_records="ignore")


def test_cpp_stream_and_reference_agree_on_awkward_input(tmp_path):
    """The C++ trainer reads .gz/.zst text and Parquet as bytes (add_bytes: repaired, counted and cut at safe
    cuts in C++), the reference as decoded str: records that start with newlines (a pre-token across the
    record boundary), a BOM, invalid UTF-8 and a 3 MB stretch without a safe cut must count the same."""
    rng = random.Random(51)
    docs = random_documents(52, 400)
    docs += ["\n\nstarts with newlines", " \n x", "\r\nCRLF", "7" * (3 << 20), "tail"]
    rng.shuffle(docs)
    raw = "".join(d + "\n\n" for d in docs).encode()
    raw = b"\xef\xbb\xbf" + raw[:5000] + b"\xff\xc3(" + raw[5000:]  # a BOM, then 2 invalid sequences
    files = {"txt.zst": tmp_path / "a.txt.zst", "txt.gz": tmp_path / "a.txt.gz"}
    files["txt.zst"].write_bytes(zstandard.ZstdCompressor().compress(raw))
    files["txt.gz"].write_bytes(gzip.compress(raw))
    files["parquet"] = write_corpus(docs, tmp_path / "a", "parquet")
    for name, f in files.items():
        # the pre-token counts themselves (merges could hide a few miscounted pieces)
        from tinyllm import _bpe
        from tinyllm.tokenizer.reference import count_pretokens, to_utf8

        trainer = _bpe.Trainer("gpt4", 2)
        for data, _ in F.read_utf8(f):
            trainer.add_bytes(data)
        trainer.add_bytes(b"", final=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = {to_utf8(k): v for k, v in count_pretokens(f).items()}
        assert trainer.pretoken_counts() == want, name
        with warnings.catch_warnings(record=True) as native_w:
            warnings.simplefilter("always")
            native = Tokenizer.train(f, vocab_size=330, show_progress=False).merges
        with warnings.catch_warnings(record=True) as ref_w:
            warnings.simplefilter("always")
            ref = ReferenceTokenizer.train(f, vocab_size=330, show_progress=False).merges
        assert native == ref, name
        utf8 = [str(w.message) for w in native_w if "UTF-8" in str(w.message)]
        assert utf8 == [str(w.message) for w in ref_w if "UTF-8" in str(w.message)], name
        assert utf8 == (
            []
            if name == "parquet"
            else [f"corpus file {f} is not valid UTF-8: 2 invalid byte sequence(s) read as U+FFFD"]
        )


def test_train_reads_a_jsonl_zst_corpus_with_its_text_field(tmp_path, run_cli):
    """TrainConfig.text_field is a `tinyllm train` flag and reaches the corpus reader."""
    docs = random_documents(61, 300)
    f = write_corpus(docs, tmp_path / "c", "jsonl.zst", field="body")
    r = run_cli("train", "--data", f, "--out_dir", tmp_path / "out", *SMALL_TRAIN, env=ENV)
    assert r.returncode == 2 and f"{f}: line 1: no field 'text' (it has: id, body)" in r.stderr
    r = run_cli("train", "--data", f, "--text_field", "body", "--out_dir", tmp_path / "out", *SMALL_TRAIN, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "out" / "latest.pt").exists()


def test_a_bad_record_late_in_prepare_leaves_no_partial_shard_set(tmp_path, run_cli, tok_file):
    """The bad line comes after three batches of 4,096 documents were encoded and written."""
    docs = random_documents(71, 13000)
    f = tmp_path / "late.jsonl"
    f.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs) + "{broken\n")
    out = tmp_path / "o"
    r = run_cli("prepare", "--data", f, "--tokenizer", tok_file, "--out", out, "--progress", "false", env=ENV)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {f}: line 13001: not JSON (")
    left = [p.name for p in out.rglob("*")] if out.exists() else []
    assert not [n for n in left if n.endswith(".bin") or n == "meta.json"], left
