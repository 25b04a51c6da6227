"""`tinyllm prepare`: streamed documents, parallel encoding into shards, memmapped training."""

import itertools
import json
import os
import random
import threading
import time

import numpy as np
import pytest

import tinyllm.data.corpus as C
import tinyllm.data.formats as F
import tinyllm.data.prepare as P
import tinyllm.data.shards as S
from tinyllm.data.corpus import load_corpus, load_documents
from tinyllm.data.tokens import build_token_files, token_dtype
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer

ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of two files (paragraphs between blank lines) and a tokenizer trained on it."""
    from tinyllm.data.corpus import bible_verses

    d = tmp_path_factory.mktemp("corpus")
    v = bible_verses()
    (d / "docs").mkdir()
    (d / "docs" / "a.txt").write_text("\n\n".join(v[:700]) + "\n", encoding="utf-8")
    (d / "docs" / "b.txt").write_text("\n  \n".join(v[700:1300]) + "\n", encoding="utf-8")
    tok = Tokenizer.train([d / "docs"], vocab_size=300, show_progress=False)
    tok.save(d / "tok.txt")
    return d


def shard_ids(out, split):
    meta = json.loads((out / "meta.json").read_text())
    return np.concatenate([np.fromfile(out / f, dtype=meta["dtype"]) for f in meta[f"{split}_shards"]])


def test_shards_hold_exactly_the_tokens_train_would_build(corpus, tmp_path, run_cli):
    out = tmp_path / "shards"
    r = run_cli(
        "prepare",
        "--data",
        corpus / "docs",
        "--tokenizer",
        corpus / "tok.txt",
        "--out",
        out,
        "--shard_tokens",
        "20000",
        env=ENV,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "tinyllm train --data" in r.stderr and "tokens/s" in r.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "tinyllm-shards" and meta["dtype"] == "uint16" and meta["vocab_size"] == 300
    assert len(meta["train_shards"]) > 2  # --shard_tokens cut it up
    assert all(os.path.getsize(out / f) <= 2 * (20000 + 2000) for f in meta["train_shards"])
    # the same split and ids as `tinyllm train --data DIR` tokenizes into out/data/
    tok = Tokenizer.load(corpus / "tok.txt")
    build_token_files(load_corpus(corpus / "docs"), tok, tmp_path / "ref", 32)
    for split in ("train", "val"):
        want = np.fromfile(tmp_path / "ref" / f"{split}.bin", dtype=np.uint16)
        assert np.array_equal(shard_ids(out, split), want), split
        assert meta[f"{split}_tokens"] == len(want)
    assert Tokenizer.load(out / "tokenizer.txt") == tok


def test_prepare_runs_without_torch(corpus, tmp_path):
    """prepare needs numpy, not torch, whose import took 2-7 s here: longer than preparing 50 MB."""
    import subprocess
    import sys

    code = (
        "import sys; from tinyllm.cli import main; "
        f"rc = main(['prepare', '--data', {str(corpus / 'docs')!r}, '--tokenizer', {str(corpus / 'tok.txt')!r}, "
        f"'--out', {str(tmp_path / 'out')!r}, '--progress', 'false']); "
        "print(rc, 'torch' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **ENV}
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["0", "False"], r.stderr[-2000:]
    assert (tmp_path / "out" / "meta.json").is_file()


def test_pure_python_process_pool_writes_the_same_shards(corpus, tmp_path, run_cli):
    native, pure = tmp_path / "native", tmp_path / "pure"
    for out, env in ((native, {}), (pure, {"TINYLLM_PURE_PYTHON": "1"})):
        r = run_cli(
            "prepare",
            "--data",
            corpus / "docs",
            "--tokenizer",
            corpus / "tok.txt",
            "--out",
            out,
            "--num_workers",
            "2",
            "--progress",
            "false",
            env={**ENV, **env},
        )
        assert r.returncode == 0, r.stderr[-3000:]
    assert "Python encoder x 2 processes" in json.loads((pure / "meta.json").read_text())["encoder"]
    for split in ("train", "val"):
        assert np.array_equal(shard_ids(native, split), shard_ids(pure, split))


@pytest.mark.parametrize(
    "text",
    [
        ("first para\nline two\n\n \n\nsecond — with ünïcödé\r\n\r\nthird\n\n\n\n" * 5 + "tail without break").encode()
        + b"\xff\xfe bad bytes\n\n  \n",
        # whitespace after a paragraph's last character at a read's end: it may be half of a break
        b"a\n\nb \nc d\n\ne\t\n" * 7 + "\u3000x\n\u2028\n y \n".encode() * 3,
    ],
    ids=["breaks", "open-whitespace"],
)
def test_streamed_documents_equal_load_documents(tmp_path, monkeypatch, text):
    f = tmp_path / "t.txt"
    f.write_bytes(text)
    want = load_documents(f)
    for block in (1, 2, 3, 5, 7, 64, 1 << 20):  # cuts inside breaks and inside multi-byte characters
        monkeypatch.setattr(C, "READ_BLOCK", block)
        blocks = list(C.stream_document_blocks(f))
        assert [d for docs, _ in blocks for d in docs] == want, block
        assert sum(n for _, n in blocks) == len(text)
        assert [b.items for b in P.batches(blocks)] == [want]  # one batch: the whole corpus, in order


@pytest.mark.parametrize(
    "text",
    [
        ("first para\nline two\n\n \n\nsecond — with ünïcödé\r\n\r\nthird\n\n\n\n" * 5 + "tail without break").encode()
        + b"\xff\xfe bad bytes\n\n  \n",
        b"a\n\nb \nc d\n\ne\t\n" * 7 + "\u3000x\n\u2028\n y \n".encode() * 3,
        b"\xef\xbb\xbfbom\r\rold mac\r\r\rparas\r\n\r\nand crlf\n\r\nmixed\n\n" * 4 + "é\n\né".encode()[:-1],
        ("clean ünïcödé\n\n" + "x y\n\n\u00a0\n" * 3 + "\u3000\n\nz").encode() * 6,
        ("中文的段落。\n\n  缩进的段落\n\n\u3000全角空格开头\n\n\t\n\n" * 2000).encode(),  # past the 64 KB head
    ],
    ids=["breaks", "open-whitespace", "bom-cr-truncated", "clean", "cjk-indented"],
)
def test_raw_blocks_are_the_documents_and_warnings_of_text_blocks(tmp_path, text):
    """stream_raw_text_blocks (bytes where valid UTF-8 without "\r", else decoded) against
    stream_text_blocks: the same documents, bytes and invalid-UTF-8 warning, for every read size."""
    import warnings

    f = tmp_path / "t.txt"
    f.write_bytes(text)
    with warnings.catch_warnings(record=True) as want_warned:
        warnings.simplefilter("always")
        want = load_documents(f)
    for block in (1, 2, 3, 5, 7, 64, 1 << 20):
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            blocks = list(C.stream_raw_text_blocks(f, block))
        assert [d for t, _ in blocks for d in C.paragraphs(t)] == want, block
        assert sum(n for _, n in blocks) == len(text)
        assert [str(w.message) for w in warned] == [str(w.message) for w in want_warned]
        if b"\r" not in text and b"\xff" not in text:  # every block comes undecoded
            assert all(isinstance(t, bytes) for t, _ in blocks), block
        if block == 64:  # cut as it is read after the head, not held whole (paragraphs open with CJK, spaces, tabs)
            assert len(blocks) > (len(text) - F.SNIFF_BYTES) // 200, len(blocks)


def _opens_paragraph_slowly(rest: bytes) -> bool:
    """The longest prefix of rest that is UTF-8, decoded: whitespace but no line break, then a character
    that is not whitespace."""
    text = next(rest[:k].decode() for k in range(len(rest), -1, -1) if _decodes(rest[:k]))
    head = text.lstrip("".join(c for c in set(text) if c.isspace() and c not in "\r\n"))
    return bool(head) and not head[0].isspace()


def _decodes(b: bytes) -> bool:
    try:
        b.decode()
        return True
    except UnicodeDecodeError:
        return False


def _cuts(data: bytes, lo: int = 0) -> list[int]:
    """Every place corpus.BREAK_PAIRS describes, found the slow way: where a run of line-break bytes
    (from lo on) that normalises to two or more "\n" ends, and a paragraph opens."""
    out = []
    for q in range(1, len(data)):
        if data[q] in b"\r\n" or not _opens_paragraph_slowly(data[q:]):
            continue
        a = q
        while a > lo and data[a - 1] in b"\r\n":
            a -= 1
        run = data[a:q].decode()
        if len(run.replace("\r\n", "\n")) >= 2:
            out.append(q)
    return out


def test_last_bytes_cut_is_the_last_cut(monkeypatch):
    rng = random.Random(0)
    for _ in range(3000):
        monkeypatch.setattr(C, "BREAK_WINDOW", rng.choice([1, 2, 3, 8, 1 << 16]))
        parts = [b"a", b" ", b"\t", b"\n", b"\r", b"\r\n", b"-", *map(str.encode, "é中\u3000\x85"), b"\xff", b"\xe4"]
        data = bytearray(b"".join(rng.choice(parts) for _ in range(rng.randint(0, 30))))
        cuts = _cuts(bytes(data))
        lo = rng.randint(0, len(data))
        # the last cut of what lies from lo on (as a suffix of a run starting before lo would be)
        assert C.last_bytes_cut(data, lo) == (([-1] + _cuts(bytes(data), lo))[-1]), (bytes(data), lo)
        assert C.last_bytes_cut(data, 0) == (cuts[-1] if cuts else -1), bytes(data)


def test_batches_close_at_the_document_that_reaches_a_limit(monkeypatch):
    rng = random.Random(0)
    for _ in range(300):
        monkeypatch.setattr(P, "BATCH_DOCS", rng.randint(1, 8))
        monkeypatch.setattr(P, "BATCH_CHARS", rng.randint(1, 40))
        blocks = [(["x" * rng.randint(1, 15) for _ in range(rng.randint(0, 12))], 3) for _ in range(rng.randint(0, 9))]
        got = [b.items for b in P.batches(blocks)]
        assert [d for b in got for d in b] == [d for docs, _ in blocks for d in docs]
        for i, b in enumerate(got):
            full = lambda docs: len(docs) >= P.BATCH_DOCS or sum(map(len, docs)) >= P.BATCH_CHARS
            assert not full(b[:-1]), b  # it closed no later than the limit ...
            assert full(b) or i == len(got) - 1, b  # ... and no earlier


def test_text_batches_close_at_the_text_that_reaches_a_limit(monkeypatch):
    """The first batch at TEXT_FIRST_CHARS (the threads wait for it), the rest at TEXT_BATCH_CHARS;
    a block of whitespace alone joins no batch but its bytes are counted."""
    rng = random.Random(0)
    for _ in range(300):
        monkeypatch.setattr(P, "TEXT_FIRST_CHARS", rng.randint(1, 30))
        monkeypatch.setattr(P, "TEXT_BATCH_CHARS", rng.randint(1, 60))
        blocks = [
            (rng.choice(["x", " \n", "ab"]) * rng.randint(1, 12), rng.randint(1, 5)) for _ in range(rng.randint(0, 12))
        ]
        got = list(P.text_batches(blocks))
        texts = [t for t, _ in blocks if t.strip()]
        assert [t for b in got for t in b.items] == texts
        assert sum(b.nbytes for b in got) == sum(n for _, n in blocks)
        for i, b in enumerate(got[: len(got) - 1]):
            limit = P.TEXT_FIRST_CHARS if i == 0 else P.TEXT_BATCH_CHARS
            assert sum(map(len, b.items[:-1])) < limit <= sum(map(len, b.items)), (i, b)


@pytest.mark.parametrize("workers", [2, 3])
def test_encoded_ahead_returns_batches_in_order_and_gives_the_ends_every_worker(workers):
    """Batches encode side by side and finish in any order; they come back in order. The first
    batch, and the last, take every worker's thread; a batch that started before the reader
    reached the end takes one. The reader stays at most DEPTH batches a worker ahead, and the
    caller's `meanwhile` runs once, after the first batch is queued."""
    n, rng, lock = 40, random.Random(workers), threading.Lock()
    read, log = [], {}

    class FakeEncoder:
        native = True

        def __init__(self):
            self.workers = workers

        def encode(self, batch, threads=None):
            k = batch.items[0]
            with lock:
                log[k] = (threads or workers, len(read) < n)  # (its threads, started before the end was read)
                delay = rng.random() * 0.004
            time.sleep(delay)  # (so that they finish out of order)
            return k

    def batches():
        for k in range(n):
            read.append(k)
            yield P.Batch([k], 1, texts=True)

    got, meanwhile = [], []
    for batch, k in P.encoded_ahead(FakeEncoder(), batches(), lambda: meanwhile.append(len(read))):
        assert batch.items == [k]
        assert len(read) - k <= P.DEPTH * workers + 2, (k, len(read))
        got.append(k)
    assert got == list(range(n))
    assert meanwhile == [2]  # the first batch queued, the second read
    assert log[0][0] == workers and log[n - 1][0] == workers
    early = [k for k in range(1, n) if log[k][1]]
    assert early and all(log[k][0] == 1 for k in early), log


def test_big_corpus_split_sends_every_tenth_block_of_50_documents_to_val():
    flags = P.split_flags(False, 0, 1000)
    assert [i for i, f in enumerate(flags) if f == "val"] == list(range(450, 500)) + list(range(950, 1000))
    assert P.split_flags(False, 450, 3) == ["val"] * 3
    assert P.split_flags(True, 0, 5) == ["train"] * 4 + ["val"]  # as split_documents: the last document is held out
    assert P.split_flags(True, 0, 1) == ["both"]


def test_block_runs_are_the_flags_runs():
    rng = random.Random()
    for _ in range(2000):
        start, n = rng.randrange(0, 3000), rng.randrange(0, 1200)
        want = [(f, len(list(r))) for f, r in itertools.groupby(P.split_flags(False, start, n))]
        assert P.block_runs(start, n) == want, (start, n)


def test_train_memmaps_the_shards(corpus, tmp_path, run_cli):
    out = tmp_path / "shards"
    r = run_cli(
        "prepare",
        "--data",
        corpus / "docs",
        "--tokenizer",
        corpus / "tok.txt",
        "--out",
        out,
        "--progress",
        "false",
        env=ENV,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    train_ds, val_ds, meta, tok = S.load_prepared(out, 32)
    assert all(isinstance(a, np.memmap) for a in train_ds.arrays + val_ds.arrays)
    assert train_ds.num_tokens == meta["train_tokens"] and tok.vocab_size == 300
    run = tmp_path / "run"
    r = run_cli(
        "train",
        "--data",
        out,
        "--out_dir",
        run,
        "--d_model",
        "32",
        "--n_layers",
        "1",
        "--n_heads",
        "2",
        "--d_ff",
        "64",
        "--context_length",
        "32",
        "--batch_size",
        "4",
        "--max_iters",
        "3",
        "--eval_interval",
        "3",
        "--eval_iters",
        "1",
        "--sample_tokens",
        "0",
        "--device",
        "cpu",
        "--progress",
        "false",
        env=ENV,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"data: {meta['train_tokens']:,} train tokens" in r.stderr
    assert not (run / "data").exists()  # nothing re-tokenized
    assert (run / "tokenizer.txt").read_text() == (out / "tokenizer.txt").read_text()


def test_uint32_shards_when_the_vocab_needs_them(tmp_path):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    w = S.ShardWriter(tmp_path, "train", token_dtype(100_000), shard_tokens=3)
    for ids in ([1, 70000], [99_999, 5], [7]):
        w.write(ids)
    w.close()
    assert w.shards == ["train_000000.bin", "train_000001.bin"]  # a new shard between documents
    got = np.concatenate([np.fromfile(tmp_path / f, dtype=np.uint32) for f in w.shards])
    assert got.tolist() == [1, 70000, 99_999, 5, 7]


@pytest.mark.parametrize("seed", range(6))
def test_writing_runs_of_documents_equals_writing_them_one_by_one(tmp_path, monkeypatch, seed):
    """write_documents (one slice per shard, what prepare uses) against write (one document at a time):
    the same shard files, bytes, CRC-32s and counts, on random documents (empty ones, ones longer than a
    shard) cut into random runs, with shards of 1 to 40 tokens, flushed in the background every few bytes."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(S, "FLUSH_BYTES", int(rng.integers(1, 200)))
    docs = [rng.integers(0, 70_000, int(rng.choice([0, 1, 2, 7, 31, 90])), dtype=np.uint32) for _ in range(300)]
    shard_tokens = int(rng.integers(1, 41))
    writers = {}
    for how in ("one by one", "runs"):
        out = tmp_path / how.replace(" ", "_")
        out.mkdir()
        w = writers[how] = S.ShardWriter(out, "train", token_dtype(100_000), shard_tokens)
        if how == "one by one":
            for d in docs:
                w.write(d.tolist())
        else:
            ids = np.concatenate(docs)
            offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
            cuts = np.unique(np.concatenate([[0, len(docs)], rng.integers(0, len(docs), 40)]))
            for a, b in zip(cuts[:-1], cuts[1:]):
                w.write_documents(ids, offsets[a : b + 1])
        w.close()
    a, b = writers["one by one"], writers["runs"]
    assert (a.shards, a.checks, a.tokens, a.documents) == (b.shards, b.checks, b.tokens, b.documents)
    for f in a.shards:
        assert (tmp_path / "one_by_one" / f).read_bytes() == (tmp_path / "runs" / f).read_bytes()


def test_a_shard_closes_only_after_its_background_flush(tmp_path, monkeypatch):
    """The flush runs on the shard's fd: closing the file under it would flush nothing (or another file)."""
    import time

    closed_under_flush, flushes = [], []

    def slow_flush(fd):
        time.sleep(0.02)
        try:
            os.fstat(fd)
            flushes.append(fd)
        except OSError:
            closed_under_flush.append(fd)

    monkeypatch.setattr(os, "fdatasync", slow_flush, raising=False)
    monkeypatch.setattr(os, "fsync", slow_flush)
    monkeypatch.setattr(S, "FLUSH_BYTES", 64)
    w = S.ShardWriter(tmp_path, "train", token_dtype(300), 100)
    for _ in range(30):
        w.write_documents(np.arange(260, 270, dtype=np.uint32), [0, 10])
    w.close()
    assert flushes and not closed_under_flush, (flushes, closed_under_flush)
    assert w.tokens == 300 and len(w.shards) == 3


def test_a_failed_background_flush_fails_the_prepare(corpus, tmp_path, monkeypatch):
    """A full disk found by the background flush: an error, and no shard set left behind."""
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full, raising=False)
    monkeypatch.setattr(S, "FLUSH_BYTES", 1000)
    with pytest.raises(OSError, match="No space left"):
        P.prepare([str(corpus / "docs")], corpus / "tok.txt", tmp_path / "out", workers=2, progress=False)
    assert not (tmp_path / "out").exists()  # prepare made the folder, and removed it


@pytest.mark.parametrize("case", ["no data", "no tokenizer", "qa json", "empty"])
def test_bad_input_is_one_line_naming_it(corpus, tmp_path, run_cli, case):
    tok, data = corpus / "tok.txt", corpus / "docs"
    if case == "no data":
        data = tmp_path / "missing"
        want = f"error: {data}: no such file or directory"
    elif case == "no tokenizer":
        tok = tmp_path / "nope.txt"
        want = f"error: tokenizer file {tok} does not exist"
    elif case == "qa json":
        data = tmp_path / "qa.json"
        data.write_text('[{"question": "q", "answer": "a"}]')
        want = f"error: {data}: Q&A data is small; train on it directly with `tinyllm train --data {data}`"
    else:
        data = tmp_path / "blank.txt"
        data.write_text("\n\n   \n")
        want = f"error: {data}: corpus is empty (no non-blank text)"
    r = run_cli("prepare", "--data", data, "--tokenizer", tok, "--out", tmp_path / "o", env=ENV)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == want


def test_train_refuses_a_foreign_tokenizer_and_a_truncated_shard(corpus, tmp_path):
    out = tmp_path / "shards"
    P.prepare([str(corpus / "docs")], corpus / "tok.txt", out, progress=False)
    other = Tokenizer.train(["some other text entirely"], vocab_size=270, show_progress=False)
    other.save(tmp_path / "other.txt")
    with pytest.raises(TinyLLMError, match=r"not the tokenizer .* was encoded with"):
        S.load_prepared(out, 32, tmp_path / "other.txt")
    shard = out / json.loads((out / "meta.json").read_text())["train_shards"][0]
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(TinyLLMError, match=r"bytes, but meta\.json says"):
        S.load_prepared(out, 32)


def test_text_blocks_end_at_breaks_and_hold_the_whole_text(tmp_path, monkeypatch):
    text = ("para one\nline\n \u2028\nsecond ü\r\n\r\n" * 9 + "x" * 40 + "\n\n\n" + "end \n").encode()
    f = tmp_path / "t.txt"
    f.write_bytes(text)
    whole = C.normalize_newlines(text.decode())
    for block in (1, 3, 8, 1 << 20):
        monkeypatch.setattr(C, "READ_BLOCK", block)
        blocks = list(C.stream_text_blocks(f))
        assert "".join(t for t, _ in blocks) == whole and sum(n for _, n in blocks) == len(text)
        for t, _ in blocks[:-1]:  # every block but the last ends with a break: its paragraphs are complete
            assert C.PARAGRAPH_BREAK.split(t)[-1] == "", (block, t[-20:])


def test_last_break_end_is_the_regex_s_last_break(monkeypatch):
    rng = random.Random(5)
    monkeypatch.setattr(C, "BREAK_WINDOW", 3)  # windows smaller than the text: the widening is exercised
    for _ in range(2000):
        text = "".join(rng.choice(["a", "b ", "\n", " ", "\t", "\u3000", "\n\n"]) for _ in range(rng.randint(1, 30)))
        end = len(text.rstrip())
        if end == 0:
            continue
        los = [0] + [i for i in range(end) if not text[i].isspace()]
        lo = rng.choice(los)
        ends = [m.end() for m in C.PARAGRAPH_BREAK.finditer(text[:end]) if m.start() >= lo]
        assert C.last_break_end(text, lo, end) == (ends[-1] if ends else -1), (text, lo)


@pytest.mark.parametrize("n_docs", [37, 1300])
def test_text_batches_write_the_shards_document_batches_write(corpus, tmp_path, monkeypatch, n_docs):
    """The C++ encoder cutting the documents from text blocks (many small batches) against the
    documents cut in Python, and both against `tinyllm train --data`'s own split and ids."""
    from tinyllm.data.corpus import bible_verses

    f = tmp_path / "c.txt"
    f.write_text("\n\n".join(bible_verses()[:n_docs]) + "\n", encoding="utf-8")
    tok = Tokenizer.load(corpus / "tok.txt")
    if not hasattr(tok, "_native"):
        pytest.skip("the C++ tokenizer is not built")
    monkeypatch.setattr(P, "TEXT_READ", 999)
    monkeypatch.setattr(P, "TEXT_BATCH_CHARS", 3000)
    monkeypatch.setattr(P, "TEXT_FIRST_CHARS", 1000)
    got = {}
    for texts in (True, False):
        monkeypatch.setattr(
            P, "corpus_documents", lambda s, o, texts_=texts, real=P.corpus_documents, **_: real(s, o, texts=texts_)
        )
        P.prepare([str(f)], corpus / "tok.txt", tmp_path / f"out{texts}", workers=2, progress=False)
        got[texts] = {s: shard_ids(tmp_path / f"out{texts}", s) for s in ("train", "val")}
    build_token_files(load_corpus(f), tok, tmp_path / "ref", 32)
    for split in ("train", "val"):
        want = np.fromfile(tmp_path / "ref" / f"{split}.bin", dtype=np.uint16)
        assert np.array_equal(got[True][split], want) and np.array_equal(got[False][split], want), split
