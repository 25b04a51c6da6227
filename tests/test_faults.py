"""Nothing lost, nothing mixed, never a traceback: each class of fault tested over every writer or
reader it applies to (issue 16). The fault injection lives in tests/faults.py."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from faults import bad_output_paths, full_disk, read_only_dir, unprivileged

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TINY = [
    "--d_model",
    "32",
    "--n_layers",
    "2",
    "--n_heads",
    "2",
    "--d_ff",
    "64",
    "--context_length",
    "32",
    "--vocab_size",
    "300",
    "--batch_size",
    "4",
    "--max_iters",
    "4",
    "--warmup_iters",
    "1",
    "--eval_interval",
    "2",
    "--eval_iters",
    "1",
    "--checkpoint_interval",
    "1",
    "--sample_tokens",
    "0",
    "--device",
    "cpu",
    "--progress",
    "false",
]
TINYLLM = [sys.executable, "-m", "tinyllm"]


def run(*args, timeout=300, cmd_prefix=None):
    cmd = [*(cmd_prefix or []), *TINYLLM, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


def one_line_error(r, *needles):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines and lines[-1].startswith("error: "), r.stderr[-2000:]
    for n in needles:
        assert n in lines[-1], (n, lines[-1])
    return lines


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from tinyllm.data.corpus import bible_verses
    from tinyllm.tokenizer import Tokenizer

    d = tmp_path_factory.mktemp("faults")
    (d / "kjv.txt").write_text("\n\n".join(bible_verses()[:600]) + "\n")
    Tokenizer.train(d / "kjv.txt", vocab_size=300, show_progress=False).save(d / "tok.txt")
    r = run("train", "--data", d / "kjv.txt", "--out_dir", d / "run", *TINY, "--max_iters", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    return d


# every writer: (name, command for an output path, whether the output is a folder)
WRITERS = {
    "train": (lambda c, out: ["train", "--data", c / "kjv.txt", "--out_dir", out, *TINY], True),
    "tokenizer train": (
        lambda c, out: ["tokenizer", "train", "--data", c / "kjv.txt", "--vocab_size", "300", "--out", out],
        False,
    ),
    "prepare": (
        lambda c, out: [
            "prepare",
            "--data",
            c / "kjv.txt",
            "--tokenizer",
            c / "tok.txt",
            "--out",
            out,
            "--progress",
            "false",
        ],
        True,
    ),
    "bench train": (
        lambda c, out: [
            "bench",
            "train",
            "--preset",
            "demo",
            "--d_model",
            "32",
            "--n_layers",
            "1",
            "--n_heads",
            "2",
            "--d_ff",
            "64",
            "--context_length",
            "16",
            "--vocab_size",
            "300",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--batch_size",
            "1",
            "--device",
            "cpu",
            "--out",
            out,
        ],
        False,
    ),
    "export hf": (
        lambda c, out: ["export", "--checkpoint", c / "run" / "latest.pt", "--format", "hf", "--out", out],
        True,
    ),
    "export gguf": (
        lambda c, out: ["export", "--checkpoint", c / "run" / "latest.pt", "--format", "gguf", "--out", out],
        False,
    ),
    "tokenizer export": (
        lambda c, out: ["tokenizer", "export", "--tokenizer", c / "tok.txt", "--format", "tiktoken", "--out", out],
        False,
    ),
    "sweep": (
        lambda c, out: [
            "sweep",
            "--out",
            out,
            "--set",
            "preset=demo",
            "--set",
            f"data={c / 'kjv.txt'}",
            "--set",
            "max_iters=1",
            "--grid",
            "seed=1,2",
        ],
        True,
    ),
}


def train_in(corpus, out, *extra, **kw):
    """`tinyllm train` of the tiny model on the test corpus into `out`."""
    return run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY, *extra, **kw)


def prepare_into(corpus, out, *extra):
    r = run(
        "prepare",
        "--data",
        corpus / "kjv.txt",
        "--tokenizer",
        corpus / "tok.txt",
        "--out",
        out,
        "--progress",
        "false",
        *extra,
    )
    assert r.returncode == 0, r.stderr[-2000:]


# ---- 1. output paths ------------------------------------------------------------------------------
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_bad_output_path_is_one_line_before_any_work(writer, corpus, tmp_path):
    cmd, is_dir = WRITERS[writer]
    for label, path, phrase in bad_output_paths(tmp_path, is_dir):
        if writer == "bench train" and label == "an existing directory":
            continue  # bench --out DIR appends to DIR/train.csv: a folder is a valid answer
        r = run(*cmd(corpus, path))
        lines = one_line_error(r, str(path), phrase)
        assert len(lines) == 1, (label, r.stderr)  # nothing ran before the check: no progress, no report
        assert not r.stdout.strip(), label


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_read_only_folder_is_one_line_before_any_work(writer, corpus, tmp_path):
    cmd, _ = WRITERS[writer]
    target = read_only_dir(tmp_path) / ("out" if WRITERS[writer][1] else "out.csv")
    r = run(*cmd(corpus, target), cmd_prefix=unprivileged([]))
    lines = one_line_error(r, str(target), "Permission denied")
    assert len(lines) == 1 and not target.exists()


def test_a_full_disk_mid_run_stops_cleanly_with_the_last_good_checkpoint(corpus):
    from tinyllm.train.checkpoint import TrainState

    with full_disk(900_000) as disk:
        out = disk / "run"
        r = train_in(corpus, out, "--max_iters", "200", "--eval_interval", "100", "--keep_checkpoints", "50")
        lines = one_line_error(r, "No space left on device", "Last good checkpoint")
        assert "latest.pt (after step" in lines[-1]
        good = int(lines[-1].split("(after step ")[1].split(")")[0])
        assert TrainState.load(out / "latest.pt").step == good  # whole, and the one the message names
        assert not list(out.rglob("*.tmp")), "a temp file was left behind"


# ---- 2. one writer per output -------------------------------------------------------------------------
HOLD = "import sys, time; from tinyllm.io import OutputLock; l = OutputLock(sys.argv[1], 'x', is_file={}).__enter__(); print('held', flush=True); time.sleep(60)"


@pytest.mark.parametrize("writer", ["train", "tokenizer train", "prepare"])
def test_a_second_writer_fails_at_once_naming_the_owner(writer, corpus, tmp_path):
    cmd, is_dir = WRITERS[writer]
    out = tmp_path / ("out" if is_dir else "tok.txt")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(not is_dir), str(out)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run(*cmd(corpus, out))
        one_line_error(r, "is in use by another tinyllm run", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    r = run(*cmd(corpus, out))  # the lock left by the killed holder is taken over, with a note
    assert r.returncode == 0, r.stderr[-2000:]
    assert "took over" in r.stderr and f"pid {holder.pid}" in r.stderr


def test_two_training_runs_into_one_out_dir_do_not_mix(corpus, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(
        [*TINYLLM, "train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY, "--max_iters", "300"],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        t0 = time.monotonic()
        while not (out / "latest.pt").exists():
            assert first.poll() is None and time.monotonic() - t0 < 120, "the first run did not start"
            time.sleep(0.05)
        second = run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY)
        one_line_error(second, f"--out_dir {out}", "in use by another tinyllm run", f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 0
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "metrics.jsonl interleaves two runs"


# ---- 3. prepare is all or nothing -----------------------------------------------------------------------
def test_an_interrupted_prepare_leaves_the_old_set_whole_and_a_fresh_one_says_incomplete(corpus, tmp_path):
    from tinyllm.data.shards import load_prepared

    out = tmp_path / "shards"
    prepare_into(corpus, out, "--shard_tokens", "5000")
    before = (out / "meta.json").read_text()
    # a second prepare (other shard size, the slow pure-Python encoder) killed once it wrote a shard
    env = {**ENV, "TINYLLM_PURE_PYTHON": "1"}
    p = subprocess.Popen(
        [
            *TINYLLM,
            "prepare",
            "--data",
            corpus / "kjv.txt",
            "--tokenizer",
            corpus / "tok.txt",
            "--out",
            out,
            "--shard_tokens",
            "300",
            "--num_workers",
            "1",
            "--progress",
            "false",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    while not list(out.glob("set-*/train_000001.bin")):
        assert p.poll() is None and time.monotonic() - t0 < 120, "the second prepare ended before it was killed"
        time.sleep(0.01)
    p.kill()
    p.wait()
    assert (out / "meta.json").read_text() == before  # the switch never happened
    train, val, meta, _ = load_prepared(out, 32)  # every shard of the old set passes its size and CRC check
    assert train.num_tokens == meta["train_tokens"] and val.num_tokens == meta["val_tokens"]
    # the next prepare clears the interrupted set away
    prepare_into(corpus, out)
    assert len(list(out.glob("set-*"))) == 1
    # a fresh prepare that never finished: train says so instead of "holds no .txt files"
    fresh = tmp_path / "fresh"
    (fresh / "set-20261201-101500-ab12").mkdir(parents=True)
    (fresh / "set-20261201-101500-ab12" / "train_000000.bin").write_bytes(b"\0\0")
    r = run("train", "--data", fresh, "--out_dir", tmp_path / "o", *TINY)
    one_line_error(r, "incomplete `tinyllm prepare` output", "run the same `tinyllm prepare")


def test_prepare_deletes_only_what_prepare_wrote(corpus, tmp_path):
    out = tmp_path / "shards"
    (out / "set-aside").mkdir(parents=True)
    (out / "set-aside" / "notes.txt").write_text("mine\n")
    (out / "embeddings.bin").write_bytes(b"mine")
    prepare_into(corpus, out)
    prepare_into(corpus, out)  # replaces the first set
    assert (out / "set-aside" / "notes.txt").read_text() == "mine\n" and (out / "embeddings.bin").exists()
    assert len([p for p in out.iterdir() if p.name.startswith("set-2")]) == 1


def test_an_interrupt_after_the_switch_keeps_the_new_set(corpus, tmp_path, monkeypatch):
    """Ctrl-C while the old set is being deleted: meta.json already names the new set, which must stay."""
    import shutil

    import tinyllm.data.prepare as P
    from tinyllm.data.shards import load_prepared

    out = tmp_path / "shards"
    prepare_into(corpus, out)

    calls = []

    def interrupted(*a, **k):  # the first delete (the old set's) is interrupted; later ones work
        calls.append(a)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return shutil.rmtree(*a, **k)

    monkeypatch.setattr(P.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        P.prepare([str(corpus / "kjv.txt")], corpus / "tok.txt", out, progress=False)
    monkeypatch.setattr(P.shutil, "rmtree", shutil.rmtree)
    train, _, meta, _ = load_prepared(out, 32)  # the set meta.json names is whole
    assert train.num_tokens == meta["train_tokens"]


def test_a_weights_only_checkpoint_is_refused_for_resume_naming_init_from(corpus, tmp_path):
    from tinyllm.train.checkpoint import TrainState

    run("train", "--data", corpus / "kjv.txt", "--out_dir", tmp_path / "o", *TINY, "--max_iters", "1")
    state = TrainState.load(tmp_path / "o" / "latest.pt")
    state.optimizer = None
    state.save(tmp_path / "weights.pt")
    r = run(
        "train", "--data", corpus / "kjv.txt", "--out_dir", tmp_path / "p", *TINY, "--resume", tmp_path / "weights.pt"
    )
    one_line_error(r, "holds weights only", f"--init_from {tmp_path / 'weights.pt'}")


def test_a_closed_pipe_is_a_quiet_exit_0():
    import argparse

    from tinyllm import cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    parser = cli.build_parser()
    parser.parse_args = lambda argv=None: argparse.Namespace(func=broken)
    original = cli.build_parser
    cli.build_parser = lambda: parser
    try:
        assert cli.main([]) == 0
    finally:
        cli.build_parser = original


def test_a_shard_that_contradicts_meta_json_is_refused_naming_it(corpus, tmp_path):
    out = tmp_path / "shards"
    prepare_into(corpus, out)
    meta = json.loads((out / "meta.json").read_text())
    shard = out / meta["train_shards"][0]
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    one_line_error(run("train", "--data", out, "--out_dir", tmp_path / "a", *TINY), str(shard), "CRC-32")
    shard.write_bytes(bytes(data[:-2]))
    one_line_error(run("train", "--data", out, "--out_dir", tmp_path / "b", *TINY), str(shard), "bytes")


# ---- 4. signals --------------------------------------------------------------------------------------------
def slow_tokenizer_corpus(path: Path) -> Path:
    """A corpus of ~400k distinct random words (3.5 MB): the pure-Python BPE trainer needs tens of
    seconds for it on any machine, so a signal sent soon after the run starts lands in its setup. (The
    Bible is too small for that: the reference trainer does it in about a second, and a signal sent
    after a fixed delay landed in setup or in training depending on the machine.)"""
    import random

    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(3, 12))) for _ in range(400_000)]
    path.write_text("\n\n".join(" ".join(rng.choices(words, k=60)) for _ in range(9_000)) + "\n")
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_setup_stops_within_seconds(sig, tmp_path):
    """While the pure-Python tokenizer trains (tens of seconds of work), the process stops at once:
    SIGINT exits 130 saying `interrupted`, SIGTERM stops without a traceback and leaves no checkpoint
    (signals during training steps: tests/test_resume.py)."""
    corpus = slow_tokenizer_corpus(tmp_path / "words.txt")
    out = tmp_path / "o"
    p = subprocess.Popen(
        [*TINYLLM, "train", "--data", corpus, "--vocab_size", "20000", "--out_dir", out, *TINY[:8]]
        + ["--device", "cpu", "--progress", "false"],
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "TINYLLM_PURE_PYTHON": "1"},
    )
    deadline = time.monotonic() + 120
    while not (out / ".tinyllm.lock").exists():  # setup has begun: --out_dir is created and locked
        assert p.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline, "the run never locked --out_dir"
        time.sleep(0.05)
    time.sleep(1.0)  # into the corpus reading / tokenizer training
    assert p.poll() is None, "the run ended before the signal"
    t0 = time.monotonic()
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 5, "it took more than a few seconds to stop"
    assert "Traceback" not in err
    assert "trained a" not in err, f"the signal came after the tokenizer was trained, not during setup:\n{err}"
    assert not (out / "latest.pt").exists()
    if sig == signal.SIGINT:
        assert p.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err


SIGNAL_AT_IMPORT = """
import os, signal, sys

class SignalAtImport:  # sends SIGINT to this process when {target!r} is first looked up
    done = False

    def find_spec(self, name, path=None, target=None):
        if name == {target!r} and not self.done:
            SignalAtImport.done = True
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, SignalAtImport())
"""


@pytest.mark.parametrize("target", ["numpy.exceptions", "numpy.version", "tinyllm.train.config"])
def test_ctrl_c_while_torch_or_numpy_import_is_an_ordinary_interrupt(target, tmp_path):
    """A Ctrl-C that lands while C extensions initialise was mishandled two ways: inside numpy's core
    (it imports numpy.exceptions) it left numpy half-loaded, `ImportError: cannot load module more than
    once per process`, a traceback, exit 1; inside torch's C core (numpy is first imported from there,
    numpy.version first of all) it was swallowed and the run trained to the end, exit 0; while the parser
    was built (it imports tinyllm.train.config) it was a traceback. The signal is sent from an import
    hook, so it lands at that exact point every time."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SIGNAL_AT_IMPORT.format(target=target))
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run(
        [*TINYLLM, "train", "--data", "bible", "--out_dir", tmp_path / "o", *TINY],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 130 and p.stderr.strip().splitlines()[-1] == "interrupted", (p.returncode, p.stderr)
    assert not (tmp_path / "o").exists()


def test_a_signal_during_an_evaluation_abandons_it_and_saves(corpus, tmp_path):
    """An evaluation of thousands of batches is cut short: the step's checkpoint is written, exit 0."""
    from tinyllm.train.checkpoint import TrainState

    out = tmp_path / "o"
    p = subprocess.Popen(
        [*TINYLLM, "train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY, "--eval_iters", "100000"],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    for line in p.stderr:  # the step-0 evaluation starts right after this line
        if line.startswith("data:"):
            break
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 5 and p.returncode == 0, err[-2000:]
    assert "SIGTERM: the evaluation abandoned" in err and "stopped by SIGTERM at step 1" in err
    assert TrainState.load(out / "latest.pt").step == 1


def test_non_regular_files_are_refused_not_read_forever(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for data in (fifo, Path("/dev/zero")):
        one_line_error(
            run("train", "--data", data, "--out_dir", tmp_path / "o", *TINY, timeout=60),
            str(data),
            "not a regular file",
        )
        assert not (tmp_path / "o").exists()


# ---- 6. messages that mislead -------------------------------------------------------------------------------
def test_chat_help_states_its_real_default_temperature():
    r = run("chat", "--help")
    assert "0 = greedy (default: 0)" in " ".join(r.stdout.split())


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(corpus, tmp_path):
    out = tmp_path / "o"
    assert run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY).returncode == 0
    latest = out / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:200])  # a hard link: checkpoints/step_0000004.pt is cut too
    r = run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY, "--max_iters", "6", "--resume", "auto")
    assert r.returncode == 0, r.stderr[-2000:]
    older = out / "checkpoints" / "step_0000003.pt"
    assert f"resuming from {older} (step 3), the newest intact checkpoint" in r.stderr
    assert "not a readable checkpoint" in r.stderr
    # asked for by path, the damaged file is an error that names the intact one
    assert run("train", "--data", corpus / "kjv.txt", "--out_dir", tmp_path / "x", *TINY).returncode == 0
    cut = tmp_path / "x" / "latest.pt"
    cut.write_bytes(cut.read_bytes()[:200])
    r = run("train", "--data", corpus / "kjv.txt", "--out_dir", tmp_path / "x", *TINY, "--resume", cut)
    one_line_error(r, "step_0000003.pt (step 3) is intact: pass --resume")


def test_resuming_with_changed_optimisation_flags_says_which(corpus, tmp_path):
    out = tmp_path / "o"
    assert run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY).returncode == 0
    r = train_in(corpus, out, "--max_iters", "5", "--max_lr", "1e-3", "--resume", "auto")
    assert r.returncode == 0, r.stderr[-2000:]
    note = next(ln for ln in r.stderr.splitlines() if "differ from the checkpoint's run" in ln)
    assert "max_lr 0.0006 -> 0.001" in note and "max_iters 4 -> 5" in note and "batch_size" not in note


@pytest.mark.parametrize("flag", ["--weight_decay", "--grad_clip"])
def test_negative_regularisation_is_refused(flag, corpus, tmp_path):
    one_line_error(
        run("train", "--data", corpus / "kjv.txt", "--out_dir", tmp_path / "o", *TINY, flag, "-1"),
        f"{flag} must be a finite number >= 0",
    )
    assert not (tmp_path / "o").exists()


def test_a_failed_run_leaves_no_empty_out_dir(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n\n")
    one_line_error(run("train", "--data", tmp_path / "empty.txt", "--out_dir", tmp_path / "o", *TINY), "empty")
    assert not (tmp_path / "o").exists()


def test_a_usage_error_is_two_lines_not_the_usage_block():
    r = run("train", "--max_iters", "many")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 2, r.stderr
    assert lines[0].startswith("usage: tinyllm train") and "invalid int value: 'many'" in lines[1]
    assert "--help" in lines[1]


def test_a_shard_folder_with_a_foreign_tokenizer_names_the_file(corpus, tmp_path):
    from tinyllm.tokenizer import Tokenizer

    out = tmp_path / "shards"
    prepare_into(corpus, out)
    own = out / json.loads((out / "meta.json").read_text())["tokenizer"]
    Tokenizer.train("other text entirely, and more of it", vocab_size=262, show_progress=False).save(own)
    r = run("train", "--data", out, "--out_dir", tmp_path / "o", *TINY)
    lines = one_line_error(r, str(own), "run `tinyllm prepare` again")
    assert "None" not in lines[-1]


# ---- 7. threads on a shared machine ---------------------------------------------------------------------------
def test_thread_defaults_wait_passively_on_the_cores_available():
    from tinyllm.cli import thread_defaults

    cores = len(os.sched_getaffinity(0))
    env = {}
    thread_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(cores)}
    env = {"LOCAL_WORLD_SIZE": "2"}
    thread_defaults(env)
    assert env["OMP_NUM_THREADS"] == str(max(1, cores // 2))
    env = {"OMP_NUM_THREADS": "7", "OMP_WAIT_POLICY": "ACTIVE"}
    thread_defaults(env)
    assert env == {"OMP_NUM_THREADS": "7", "OMP_WAIT_POLICY": "ACTIVE"}  # the user's word wins


def test_weights_of_a_resumed_run_are_untouched_by_a_refused_second_writer(corpus, tmp_path):
    """The refused second writer wrote nothing: the first run's checkpoint is the same bytes."""
    from tinyllm.train.checkpoint import TrainState

    out = tmp_path / "o"
    assert run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY).returncode == 0
    before = TrainState.load(out / "latest.pt").model
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(False), str(out)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(run("train", "--data", corpus / "kjv.txt", "--out_dir", out, *TINY, "--max_lr", "1"))
    finally:
        holder.kill()
        holder.wait()
    after = TrainState.load(out / "latest.pt").model
    assert all(torch.equal(before[k], after[k]) for k in before)
