"""Text corpora -> memmapped token files -> random (x, y) windows."""

import math

import numpy as np
import pytest
import torch

from tinyllm.data.corpus import bible_verses, load_corpus, load_documents, split_documents
from tinyllm.data.tokens import TokenDataset, build_token_files, read_tokens, token_dtype, unigram_entropy, write_tokens
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer


def test_bible_ships_offline_without_verse_references():
    verses = bible_verses()
    assert len(verses) == 31102
    assert verses[0].startswith("In the beginning God created the heaven and the earth")
    assert not any(v[:1].isdigit() and ":" in v[:12] for v in verses[:1000])
    assert load_corpus(None).name == "bible"


@pytest.mark.parametrize("vocab, dtype", [(300, np.uint16), (65536, np.uint16), (65537, np.uint32)])
def test_token_files_use_the_narrowest_dtype_and_round_trip(tmp_path, vocab, dtype):
    rng = np.random.default_rng(vocab)
    ids = rng.integers(0, vocab, size=1003)
    assert token_dtype(vocab) == dtype
    n = write_tokens(tmp_path / "t.bin", [ids[:500].tolist(), ids[500:].tolist()], vocab)
    assert n == 1003 and (tmp_path / "t.bin").stat().st_size == 1003 * np.dtype(dtype).itemsize
    back = read_tokens(tmp_path / "t.bin", dtype)
    assert isinstance(back, np.memmap) and np.array_equal(back, ids)


def test_out_of_range_id_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(TinyLLMError, match="out of range"):
        write_tokens(tmp_path / "t.bin", [[1, 2, 70000]], 300)
    assert not list(tmp_path.iterdir())


def test_random_windows_are_shifted_by_one_and_in_bounds():
    arrays = [np.arange(0, 50, dtype=np.uint16), np.arange(1000, 1037, dtype=np.uint16)]  # odd sizes
    ds = TokenDataset(arrays, context_length=9)
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        x, y = ds.sample(gen, 7)
        assert x.shape == y.shape == (7, 9) and x.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])
        assert torch.all(y - x == 1)  # consecutive ids: a window never spans two arrays
    # same generator seed -> same batch (the trainer's resume depends on it)
    a = ds.sample(torch.Generator().manual_seed(5), 4)
    b = ds.sample(torch.Generator().manual_seed(5), 4)
    assert torch.equal(a[0], b[0])


def test_indexed_windows_cover_the_data_without_overlap():
    ds = TokenDataset(np.arange(100, dtype=np.uint16), context_length=8)
    assert len(ds) == 12  # (100 - 1) // 8
    xs = torch.cat([ds[i][0] for i in range(len(ds))])
    assert torch.equal(xs, torch.arange(96))
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_too_few_tokens_is_a_clear_error():
    with pytest.raises(TinyLLMError, match="too few for context_length 64"):
        TokenDataset(np.arange(10, dtype=np.uint16), 64, "mini")


def test_split_is_deterministic_disjoint_and_complete():
    docs = [f"doc {i}\n" for i in range(2345)]
    train, val = split_documents(docs)
    assert split_documents(docs) == (train, val)
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(docs)
    assert 0.05 < len(val) / len(docs) < 0.15
    # validation spans the corpus instead of being only its tail
    assert int(val[0].split()[1]) < len(docs) // 4 and int(val[-1].split()[1]) > len(docs) // 2


@pytest.mark.parametrize("n", range(2, 13))
def test_small_corpus_split_holds_out_a_document(n):
    docs = [f"doc {i}\n" for i in range(n)]
    train, val = split_documents(docs)
    assert val and set(train).isdisjoint(val) and sorted(train + val) == sorted(docs)


def test_split_of_one_document_validates_on_it():
    assert split_documents(["only\n"]) == (["only\n"], ["only\n"])


def test_bom_and_crlf_files_give_the_same_documents_as_lf(tmp_path):
    lf = "first para\nline two\n\n \n\nsecond — ünïcödé\n\n\nthird\nend\n"
    (tmp_path / "lf.txt").write_bytes(lf.encode())
    (tmp_path / "crlf.txt").write_bytes(b"\xef\xbb\xbf" + lf.replace("\n", "\r\n").encode())
    (tmp_path / "cr.txt").write_bytes(lf.replace("\n", "\r").encode())
    want = load_documents(tmp_path / "lf.txt")
    assert want == ["first para\nline two\n\n", "second — ünïcödé\n\n", "third\nend\n\n\n"]
    assert load_documents(tmp_path / "crlf.txt") == want
    assert load_documents(tmp_path / "cr.txt") == want


def test_prepare_streams_bom_and_crlf_files_like_load_documents(tmp_path, monkeypatch):
    from tinyllm.data import corpus as C

    lf = "first para\nline two\n\n \n\nsecond — ünïcödé\n\n\nthird\nend\n" * 3 + "tail"
    f = tmp_path / "crlf.txt"
    raw = b"\xef\xbb\xbf" + lf.replace("\n", "\r\n").encode() + b"\rlone cr\r\r\n"
    f.write_bytes(raw)
    want = load_documents(f)
    assert want[0] == "first para\nline two\n\n" and not any("\r" in d or "\ufeff" in d for d in want)
    for block in (1, 2, 3, 5, 7, 64, 1 << 20):  # cuts inside the BOM and between "\r" and "\n"
        monkeypatch.setattr(C, "READ_BLOCK", block)
        got = list(C.stream_document_blocks(f))
        assert [d for docs, _ in got for d in docs] == want, block
        assert sum(n for _, n in got) == len(raw)


def test_prepare_splits_a_small_corpus_as_split_documents():
    from tinyllm.data import prepare as P

    for n in range(1, 13):
        docs = [f"doc {i}\n" for i in range(n)]
        train, val = split_documents(docs)
        flags = P.split_flags(True, 0, n)
        assert [d for d, s in zip(docs, flags) if s in ("train", "both")] == train, n
        assert [d for d, s in zip(docs, flags) if s in ("val", "both")] == val, n


def test_text_folder_and_bad_utf8(tmp_path):
    (tmp_path / "a.txt").write_text("first paragraph\n\nsecond paragraph\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes(b"caf\xc3\xa9 and a cut \xe2\x82\n")
    (tmp_path / "skip.md").write_text("not a txt file")
    docs = load_documents(tmp_path)
    assert len(docs) == 3 and "café" in docs[2] and "\ufffd" in docs[2]
    assert not any("not a txt" in d for d in docs)


def test_token_files_are_reused_and_rebuilt_when_the_tokenizer_changes(tmp_path):
    corpus = load_corpus(_write(tmp_path / "c.txt", "\n\n".join(f"line number {i} of the text" for i in range(400))))
    tok = Tokenizer.train(corpus.tokenizer_texts(), vocab_size=300)
    train, _, meta = build_token_files(corpus, tok, tmp_path / "data", 16)
    stamp = (tmp_path / "data" / "train.bin").stat().st_mtime_ns
    build_token_files(corpus, tok, tmp_path / "data", 16)
    assert (tmp_path / "data" / "train.bin").stat().st_mtime_ns == stamp
    tok2 = Tokenizer.train(corpus.tokenizer_texts(), vocab_size=290)
    _, _, meta2 = build_token_files(corpus, tok2, tmp_path / "data", 16)
    assert meta2["tokenizer_hash"] != meta["tokenizer_hash"]
    # the files decode back to the split documents
    train_docs, _ = split_documents(corpus.documents)
    assert tok.decode(np.asarray(train.arrays[0]).tolist()) == "".join(train_docs)


def test_unigram_entropy_matches_the_formula():
    assert unigram_entropy(np.array([0, 0, 1, 1]), 5) == pytest.approx(math.log(2))
    assert unigram_entropy(np.array([3] * 10), 5) == 0.0


def _write(path, text):
    path.write_text(text)
    return path
