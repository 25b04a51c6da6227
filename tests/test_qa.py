"""Q&A data: TinyLLM's JSON format, validation messages, packing with answer-only loss,
the auto settings, the shipped demo set and TinyLLM's Python entry points."""

import json
import os
from pathlib import Path

import pytest
import torch

from tinyllm.data import PackedQADataset, format_prompt, load_qa
from tinyllm.data.packed import IGNORE_INDEX
from tinyllm.data.qa import DEMO_QA, QAPair, demo_qa_path, resolve_qa_source
from tinyllm.errors import TinyLLMError
from tinyllm.generate import trim_stream
from tinyllm.train.qa_defaults import qa_preset_name, qa_train_defaults

PAIRS = [
    {"id": 1, "category": "greeting", "question": "Who are you?", "answer": "I am a test model."},
    {"id": "two", "question": "What is 2 + 2?", "answer": "Four."},
    {"question": "Where do fish live?", "answer": "In water, mostly in the sea."},
]


@pytest.fixture(scope="module")
def tok():
    from tinyllm.tokenizer import Tokenizer

    texts = [f"Question: {p['question']}\nAnswer: {p['answer']}" for p in PAIRS] * 3
    return Tokenizer.train(texts, vocab_size=300, show_progress=False)


def write(tmp_path, data, name="qa.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# ---- the format ----------------------------------------------------------------------------


def test_json_and_jsonl_give_the_same_pairs(tmp_path):
    a = load_qa(write(tmp_path, PAIRS))
    b = load_qa(write(tmp_path, "\n".join(json.dumps(p) for p in PAIRS) + "\n\n", "qa.jsonl"))
    assert a == b and len(a) == 3
    assert a[0] == QAPair("Who are you?", "I am a test model.", 1, "greeting", 0)
    assert a[2].id is None and a[2].category is None and a[2].index == 2


def test_pair_template_is_tinyllms():
    p = QAPair("Who are you?", "I am a test model.")
    assert p.text() == "<BOS> Question: Who are you?\nAnswer: I am a test model. <EOS>"
    assert format_prompt("Who are you?") == "<BOS> Question: Who are you?\nAnswer:"
    assert p.text().startswith(p.prompt())


# ---- validation: every problem names the record index and the field --------------------------

BAD = {
    "not an array": (
        {"question": "q", "answer": "a"},
        r"expected a JSON array of question/answer objects, got an object",
    ),
    "a string, not an array": ('"hello"', r"expected a JSON array .* got a string"),
    "record not an object": (
        [PAIRS[0], ["q", "a"]],
        r"record 1: expected an object with 'question' and 'answer', got an array",
    ),
    "missing question": ([PAIRS[0], PAIRS[1], {"answer": "a"}], r"record 2: missing field 'question'"),
    "missing answer": ([{"question": "q"}], r"record 0: missing field 'answer'"),
    "empty question": ([PAIRS[0], {"question": "  \n", "answer": "a"}], r"record 1: field 'question' is empty"),
    "empty answer": ([{"question": "q", "answer": ""}], r"record 0: field 'answer' is empty"),
    "number answer": ([{"question": "q", "answer": 42}], r"record 0: field 'answer' must be a string, got a number"),
    "null question": (
        [PAIRS[0], {"question": None, "answer": "a"}],
        r"record 1: field 'question' must be a string, got null",
    ),
    "list answer": ([{"question": "q", "answer": ["a"]}], r"record 0: field 'answer' must be a string, got an array"),
    "duplicate id": (
        [PAIRS[0], PAIRS[1], dict(PAIRS[2], id=1)],
        r"record 2: field 'id': duplicate id 1 \(first used by record 0\)",
    ),
    "bad id type": ([dict(PAIRS[0], id=[1])], r"record 0: field 'id' must be a string or an integer, got an array"),
    "bad category": ([dict(PAIRS[0], category=3)], r"record 0: field 'category' must be a string, got a number"),
    "special token": (
        [{"question": "q", "answer": "stop <EOS> here"}],
        r"record 0: field 'answer' contains the special token <EOS>",
    ),
    "empty array": ([], r"no question/answer records"),
    "malformed": ('[{"question": "q", "answer": "a"},', r"malformed JSON at line 1 column \d+"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_json_is_one_clear_error(tmp_path, case):
    data, message = BAD[case]
    path = write(tmp_path, data)
    with pytest.raises(TinyLLMError, match=message) as e:
        load_qa(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_jsonl_errors_name_record_and_line(tmp_path):
    lines = [json.dumps(PAIRS[0]), "", json.dumps({"question": "q"})]
    with pytest.raises(TinyLLMError, match=r"record 1 \(line 3\): missing field 'answer'"):
        load_qa(write(tmp_path, "\n".join(lines), "qa.jsonl"))
    with pytest.raises(TinyLLMError, match=r"line 2: malformed JSON"):
        load_qa(write(tmp_path, json.dumps(PAIRS[0]) + "\n{oops\n", "qa.jsonl"))


def test_jsonl_splits_records_on_newlines_only(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028 and U+0085 raw; str.splitlines() would cut there
    rec = {"question": "Line separators?", "answer": "one\u2028two\x85three"}
    line = json.dumps(rec, ensure_ascii=False)
    assert "\u2028" in line and "\x85" in line
    pairs = load_qa(write(tmp_path, line + "\r\n" + json.dumps(PAIRS[1]) + "\n", "qa.jsonl"))
    assert [p.answer for p in pairs] == [rec["answer"], PAIRS[1]["answer"]]
    with pytest.raises(TinyLLMError, match=r"line 3: malformed JSON"):
        load_qa(write(tmp_path, line + "\n" + line + "\n{oops\n", "qa.jsonl"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TinyLLMError, match="no such file"):
        load_qa(tmp_path / "nope.json")
    (tmp_path / "d.json").mkdir()
    with pytest.raises(TinyLLMError, match="is a directory"):
        load_qa(tmp_path / "d.json")


def test_pairs_longer_than_the_context_are_truncated_with_a_warning(tok, capsys):
    pairs = [
        QAPair("q" * 5, "long answer " * 20, index=0),
        QAPair("Who?", "Me.", index=1),
        QAPair("Why " * 30, "Because.", index=2),
    ]
    ds = PackedQADataset(pairs, tok, context_length=24, name="qa.json (train)")
    err = capsys.readouterr().err
    assert "qa.json (train): 2 of 3 pairs are longer than the context (24 tokens + 1) and were truncated" in err
    assert "(records 0, 2)" in err
    assert ds.truncated == [0, 2]
    assert all(len(ids) <= 25 for ids in ds.ids)


def test_cli_reports_bad_qa_as_one_line_exit_2(run_cli, tmp_path):
    write(tmp_path, [PAIRS[0], {"question": "What?", "answer": 3}], "bad.json")
    r = run_cli("train", "--data", "bad.json", "--progress", "false", timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines == ["error: bad.json: record 1: field 'answer' must be a string, got a number"], r.stderr


# ---- packing and the answer-only loss -----------------------------------------------------


def _check_rows(ds, tok, x, y, loss_on):
    """Every row: whole pairs (each <BOS> ... <EOS> complete), then padding; y = x shifted by one
    where scored; scored = the answer tokens and <EOS> (loss_on='answer') or every pair token."""
    answers = {tuple(tok.encode(f" {p['answer']} <EOS>")) for p in PAIRS}
    for xr, yr in zip(x.tolist(), y.tolist()):
        row = xr + [yr[-1] if yr[-1] != IGNORE_INDEX else tok.pad_id]
        n_real = len(row) - next((i for i, t in enumerate(reversed(row)) if t != tok.pad_id), len(row))
        real = row[:n_real]
        assert all(t == tok.pad_id for t in row[n_real:])
        assert real and real[0] == tok.bos_id and real[-1] == tok.eos_id
        text = tok.decode(real)
        chunks = text.split("<BOS>")[1:]
        assert all(c.endswith(" <EOS>") for c in chunks), text  # no pair cut in two
        for t in range(len(yr)):
            if yr[t] != IGNORE_INDEX:
                assert yr[t] == row[t + 1]
        scored = [t + 1 for t in range(len(yr)) if yr[t] != IGNORE_INDEX]
        if loss_on == "answer":
            # the scored stretches are exactly the answers with their <EOS>
            runs, cur = [], []
            for pos in scored:
                if cur and pos != cur[-1] + 1:
                    runs.append(cur)
                    cur = []
                cur.append(pos)
            runs.append(cur)
            assert {tuple(row[r[0] : r[-1] + 1]) for r in runs} <= answers
            assert len(runs) == len(chunks)
        else:
            assert scored == list(range(1, n_real))


@pytest.mark.parametrize("loss_on", ["answer", "all"])
def test_rows_hold_whole_pairs_and_score_the_right_tokens(tok, loss_on):
    pairs = [QAPair(p["question"], p["answer"]) for p in PAIRS] * 4
    ds = PackedQADataset(pairs, tok, context_length=48, loss_on=loss_on)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    _check_rows(ds, tok, torch.stack(xs), torch.stack(ys), loss_on)
    assert sum(len(r) for r in ds.rows) == len(pairs)  # indexing: every pair once, in file order
    assert [k for r in ds.rows for k in r] == sorted(k for r in ds.rows for k in r)
    x, y = ds.sample(torch.Generator().manual_seed(0), 16)
    assert x.shape == y.shape == (16, 48)
    _check_rows(ds, tok, x, y, loss_on)


def test_sample_repacks_every_batch_from_the_seed_alone(tok):
    pairs = [QAPair(p["question"], p["answer"]) for p in PAIRS] * 6
    ds = PackedQADataset(pairs, tok, context_length=48)
    a = ds.sample(torch.Generator().manual_seed(1), 8)
    b = ds.sample(torch.Generator().manual_seed(1), 8)
    c = ds.sample(torch.Generator().manual_seed(2), 8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # a pair is not pinned to one offset: over a few batches the first question shows up at several positions
    first = tok.encode(pairs[0].prompt())
    starts = set()
    for s in range(20):
        x, _ = ds.sample(torch.Generator().manual_seed(s), 8)
        for row in x.tolist():
            starts |= {i for i in range(len(row) - len(first)) if row[i : i + len(first)] == first}
    assert 0 in starts and len(starts) >= 2


def test_sample_slices_pairs_by_part(tok):
    pairs = [QAPair(f"Question number {i}?", f"Answer {i}.") for i in range(12)]
    ds = PackedQADataset(pairs, tok, context_length=64)
    seen = []
    for part in range(2):
        x, _ = ds.sample(torch.Generator().manual_seed(0), 4, part, 2)
        text = "".join(tok.decode(r) for r in x.tolist())
        seen.append({i for i in range(12) if f"number {i}?" in text})
    assert seen[0] <= set(range(6)) and seen[1] <= set(range(6, 12)), seen


def test_trim_stream_drops_the_template_spaces_without_buffering_the_answer():
    assert "".join(trim_stream(iter([" ", " I", " am", " ", " here", ".", " "]))) == "I am  here."
    assert list(trim_stream(iter([" I", " am", " "]))) == ["I", " am"]
    assert "".join(trim_stream(iter([" ", "\n"]))) == ""


# ---- the auto settings ------------------------------------------------------------------


def test_auto_settings_scale_with_the_data():
    demo = load_qa(DEMO_QA)
    d = qa_train_defaults(demo)
    assert qa_preset_name(len(demo)) == "demo"
    assert d["context_length"] == 128 and d["vocab_size"] == 1024 and d["dropout"] == 0.0
    assert 300 <= d["max_iters"] <= 700, d
    big = [QAPair("q" * 40, "a" * 600)] * 5000
    b = qa_train_defaults(big)
    assert qa_preset_name(len(big)) == "tiny" and b["context_length"] == 256 and b["max_iters"] > d["max_iters"]
    # a preset chosen by the user keeps its own shape
    assert not {"vocab_size", "context_length", "dropout"} & set(qa_train_defaults(demo, preset="tiny"))


# ---- the shipped demo set ------------------------------------------------------------------


def test_demo_set_ships_in_the_package():
    path = demo_qa_path()
    assert path.is_file() and path.parent.name == "assets"
    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    assert '"assets/*"' in setup  # package_data: the set is installed with the package
    records = json.loads(path.read_text(encoding="utf-8"))
    assert len(records) >= 60
    assert all(set(r) == {"id", "category", "question", "answer"} for r in records)
    assert len({r["id"] for r in records}) == len(records)
    pairs = load_qa(DEMO_QA)
    assert len(pairs) == len(records)
    questions = {p.question for p in pairs}
    assert {
        "Who are you?",
        "What is tinyllm?",
        "What presets exist?",
        "What does --top_k do?",
        "How do I train on several GPUs?",
    } <= questions
    assert resolve_qa_source("qa") == str(path) and resolve_qa_source("bible") == "bible"
    # the held-out pairs rephrase trained questions: every answer is in the training split
    from tinyllm.data.corpus import split_documents

    train, val = split_documents(pairs)
    assert len(val) == len(pairs) // 10 and {p.answer for p in val} <= {p.answer for p in train}


def test_a_local_qa_path_wins_over_the_demo_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_qa_source("qa") == str(demo_qa_path())
    (tmp_path / "qa").mkdir()
    assert resolve_qa_source("qa") == "qa"


# ---- TinyLLM's Python entry points -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::tinyllm.tokenizer.inputs.CorpusWarning")  # 30 pairs cannot reach 2000 tokens
def test_tinyllm_readme_snippet_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    records = json.loads(demo_qa_path().read_text(encoding="utf-8"))[:30]
    (tmp_path / "data" / "my_dataset.json").write_text(json.dumps(records))
    monkeypatch.chdir(tmp_path)

    # --- verbatim from TinyLLM's README ---
    from tinyllm.data import create_dataloader, prepare_custom_data

    train_ds, val_ds, tokenizer = prepare_custom_data(
        json_path="data/my_dataset.json", vocab_size=2000, context_length=128, force_retrain_tokenizer=True
    )
    loader = create_dataloader(train_ds, batch_size=8)  # yields (x, y) with y = x shifted by one
    # ---

    x, y = next(iter(loader))
    assert x.shape == y.shape and x.shape[1] == 128 and x.dtype == y.dtype == torch.int64
    scored = y[:, :-1] != IGNORE_INDEX
    assert scored.any()
    assert torch.equal(y[:, :-1][scored], x[:, 1:][scored])  # y is x shifted by one where it is scored
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert (y == tokenizer.eos_id).any()  # the closing <EOS> is a target: a greedy loop can stop at it
    assert len(train_ds) + len(val_ds) > 0 and (tmp_path / "data" / "my_dataset.tokenizer.txt").is_file()
    assert sum(b[0].shape[0] for b in loader) == len(train_ds)

    # a hand-written greedy loop over an (untrained) model stops at tokenizer.eos_id or the limit
    import tinyllm

    model = tinyllm.TinyLLM(
        tinyllm.ModelConfig(
            vocab_size=tokenizer.vocab_size, context_length=128, d_model=32, n_layers=1, n_heads=2, d_ff=64
        )
    )
    ids = tokenizer.encode(format_prompt("Who are you?"))
    with torch.no_grad():
        for _ in range(5):
            logits, _ = model(torch.tensor([ids]))
            nxt = int(logits[0, -1].argmax())
            if nxt == tokenizer.eos_id:
                break
            ids.append(nxt)
    assert tokenizer.decode(ids).startswith("<BOS> Question: Who are you?\nAnswer:")


def test_prepare_custom_data_reuses_its_tokenizer(tmp_path):
    path = write(tmp_path, [{k: v for k, v in p.items() if k != "id"} for p in PAIRS] * 4)
    from tinyllm.data import prepare_custom_data

    _, _, t1 = prepare_custom_data(path, vocab_size=270, context_length=64)
    stamp = os.stat(tmp_path / "qa.tokenizer.txt").st_mtime_ns
    _, _, t2 = prepare_custom_data(path, vocab_size=270, context_length=64)
    assert t1.to_str() == t2.to_str() and os.stat(tmp_path / "qa.tokenizer.txt").st_mtime_ns == stamp
