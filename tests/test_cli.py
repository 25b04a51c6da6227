"""The command line: help everywhere, and bad input ends in one clear line with exit code 2."""

import json

import pytest
import torch

SMALL = (
    "--d_model 32 --n_layers 1 --n_heads 2 --d_ff 64 --context_length 16 --vocab_size 280 "
    "--batch_size 4 --max_iters 2 --eval_interval 1 --eval_iters 1 --sample_tokens 0 --device cpu "
    "--progress false"
).split()


def assert_clean_error(proc, *needles):
    """Exit 2, exactly one line `error: ...` on stderr naming each needle, no traceback, nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert proc.stdout == ""
    return errors[0]


def assert_nothing_written(out_dir):
    """No checkpoint, metrics or temp file left behind by a failed run."""
    if out_dir.exists():
        left = [p.name for p in out_dir.rglob("*") if p.suffix in (".pt", ".jsonl", ".png") or "tmp" in p.name]
        assert not left, left


def test_python_m_and_console_script_share_help(run_cli):
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("train", "generate", "chat", "tokenizer"):
        assert cmd in r.stdout


def test_every_flag_has_help_text():
    import argparse

    from tinyllm.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])
            elif action.option_strings and not isinstance(action, argparse._HelpAction):
                yield path, action

    seen = 0
    for path, action in walk(build_parser(), []):
        seen += 1
        assert action.help and action.help.strip(), f"tinyllm {' '.join(path)} {action.option_strings[0]}: no help"
    assert seen > 40


def test_train_help_lists_tinyllm_flags(run_cli):
    text = run_cli("train", "--help").stdout
    for flag in (
        "--batch_size",
        "--max_iters",
        "--d_model",
        "--n_layers",
        "--n_heads",
        "--context_length",
        "--vocab_size",
        "--max_lr",
        "--warmup_iters",
        "--grad_accumulation_steps",
        "--dropout",
        "--preset",
        "--data",
        "--out_dir",
        "--seed",
        "--device",
        "--eval_interval",
        "--checkpoint_interval",
        "--pos_emb",
        "--activation",
        "--attention",
        "--compile",
        "--use_learned_pos_emb",
    ):
        assert flag in text, flag


def test_missing_data_file(tmp_path, run_cli):
    r = run_cli("train", "--data", tmp_path / "nope.txt", "--out_dir", tmp_path / "o", *SMALL)
    assert_clean_error(r, "nope.txt")
    assert_nothing_written(tmp_path / "o")


def test_empty_corpus_file_and_folder(tmp_path, run_cli):
    (tmp_path / "empty.txt").write_text("   \n\n")
    r = run_cli("train", "--data", tmp_path / "empty.txt", "--out_dir", tmp_path / "o", *SMALL)
    assert_clean_error(r, "empty.txt", "empty")
    (tmp_path / "folder").mkdir()
    r = run_cli("train", "--data", tmp_path / "folder", "--out_dir", tmp_path / "o", *SMALL)
    assert_clean_error(r, "folder")
    assert_nothing_written(tmp_path / "o")


def test_malformed_json(tmp_path, run_cli):
    (tmp_path / "qa.json").write_text('[{"question": "a", "answer": "b"},\n {"question": ')
    r = run_cli("train", "--data", tmp_path / "qa.json", "--out_dir", tmp_path / "o", *SMALL)
    line = assert_clean_error(r, "qa.json")
    assert "line 2" in line  # where the JSON breaks
    assert_nothing_written(tmp_path / "o")


@pytest.mark.parametrize(
    "records, needles",
    [
        ([{"question": "q", "answer": "a"}, {"answer": "no question"}], ["record 1", "question"]),
        (
            [{"question": "q", "answer": "a"}, {"question": "q2", "answer": "a"}, {"question": "no answer"}],
            ["record 2", "answer"],
        ),
        ([{"question": 5, "answer": "a"}], ["record 0", "question", "string"]),
        ([{"question": "q", "answer": ["a"]}], ["record 0", "answer", "string"]),
    ],
)
def test_bad_qa_record_names_index_and_field(tmp_path, run_cli, records, needles):
    (tmp_path / "qa.json").write_text(json.dumps(records))
    r = run_cli("train", "--data", tmp_path / "qa.json", "--out_dir", tmp_path / "o", *SMALL)
    assert_clean_error(r, "qa.json", *needles)
    assert_nothing_written(tmp_path / "o")


def test_vocab_too_small_for_bytes_and_specials(tmp_path, run_cli):
    (tmp_path / "t.txt").write_text("hello world\n" * 50)
    flags = list(SMALL)
    flags[flags.index("--vocab_size") + 1] = "100"
    r = run_cli("train", "--data", tmp_path / "t.txt", "--out_dir", tmp_path / "o", *flags)
    assert_clean_error(r, "vocab_size", "260")
    assert_nothing_written(tmp_path / "o")
    r = run_cli("tokenizer", "train", "--data", tmp_path / "t.txt", "--vocab_size", "10", "--out", tmp_path / "t.tok")
    assert_clean_error(r, "vocab_size")
    assert not (tmp_path / "t.tok").exists()


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    import os
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("ck")
    (d / "t.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    r = subprocess.run(
        [sys.executable, "-m", "tinyllm", "train", "--data", str(d / "t.txt"), "--out_dir", str(d / "o"), *SMALL],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert r.returncode == 0, r.stderr
    return d / "o" / "latest.pt"


def test_truncated_checkpoint(tmp_path, run_cli, good_checkpoint):
    bad = tmp_path / "half.pt"
    data = good_checkpoint.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    for cmd in ("generate", "chat"):
        r = (
            run_cli(cmd, "--checkpoint", bad, "--prompt", "x")
            if cmd == "generate"
            else run_cli(cmd, "--checkpoint", bad, input="")
        )
        assert_clean_error(r, "half.pt")


def test_foreign_checkpoints(tmp_path, run_cli):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    r = run_cli("generate", "--checkpoint", tmp_path / "other.pt", "--prompt", "x")
    assert_clean_error(r, "other.pt", "not a tinyllm checkpoint")
    (tmp_path / "notes.pt").write_text("just text")
    assert_clean_error(run_cli("generate", "--checkpoint", tmp_path / "notes.pt"), "notes.pt")
    assert_clean_error(run_cli("generate", "--checkpoint", tmp_path / "missing.pt"), "missing.pt")


def test_bad_sampling_flags(run_cli, good_checkpoint):
    for flags, needle in (
        (["--temperature", "-1"], "--temperature"),
        (["--top_k", "0"], "--top_k"),
        (["--top_p", "1.5"], "--top_p"),
        (["--max_tokens", "0"], "--max_tokens"),
        (["--temperature", "nan"], "--temperature"),
        (["--seed", str(2**70)], "--seed"),
        (["--device", "mps"], "--device"),
        (["--device", "cuda:7"], "--device"),
    ):
        assert_clean_error(run_cli("generate", "--checkpoint", good_checkpoint, *flags), needle)


def test_bad_model_flags(tmp_path, run_cli):
    (tmp_path / "t.txt").write_text("hello world\n" * 50)
    flags = list(SMALL)
    flags[flags.index("--n_heads") + 1] = "5"
    r = run_cli("train", "--data", tmp_path / "t.txt", "--out_dir", tmp_path / "o", *flags)
    assert_clean_error(r, "d_model", "n_heads")
    r = run_cli("train", "--data", tmp_path / "t.txt", "--out_dir", tmp_path / "o", *SMALL, "--batch_size", "0")
    assert_clean_error(r, "batch_size")
    for flags, needle in ((["--min_lr", "-1"], "--min_lr"), (["--max_lr", "inf"], "--max_lr")):
        assert_clean_error(
            run_cli("train", "--data", tmp_path / "t.txt", "--out_dir", tmp_path / "o", *SMALL, *flags), needle
        )


def test_tokenizer_cli_roundtrip_and_view(tmp_path, run_cli):
    (tmp_path / "t.txt").write_text("the lower the lowest, the newer the newest\n" * 100)
    tok = tmp_path / "tok.txt"
    r = run_cli("tokenizer", "train", "--data", tmp_path / "t.txt", "--vocab_size", "300", "--out", tok)
    assert r.returncode == 0, r.stderr
    text = "the lower newest <BOS> ünïcødé 🙂"
    ids = run_cli("tokenizer", "encode", "--tokenizer", tok, "--text", text).stdout.split()
    assert "2" in ids  # <BOS> is one special token
    back = run_cli("tokenizer", "decode", "--tokenizer", tok, "--ids", " ".join(ids))
    assert back.stdout == text + "\n"
    view = run_cli("tokenizer", "view", "--tokenizer", tok, "--text", "the lower").stdout
    assert "▁lower" in view or "▁low" in view
    assert_clean_error(run_cli("tokenizer", "decode", "--tokenizer", tok, "--ids", "1 99999"), "99999")
    assert_clean_error(run_cli("tokenizer", "encode", "--tokenizer", tmp_path / "none.txt", "--text", "a"), "none.txt")
