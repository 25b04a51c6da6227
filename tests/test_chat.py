"""Fine-tuning with --init_from, asking a Q&A checkpoint with `generate`, and `tinyllm chat`
driven through stdin and through a pseudo-terminal."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import tinyllm

QA = [
    {"id": 1, "question": "Who are you?", "answer": "I am a tiny test model."},
    {"id": 2, "question": "What is two plus two?", "answer": "Four."},
    {"id": 3, "question": "What colour is the sky?", "answer": "Blue, on a clear day."},
    {"id": 4, "question": "Where do fish live?", "answer": "In water."},
]
MODEL = [
    "--d_model",
    "64",
    "--n_layers",
    "2",
    "--n_heads",
    "4",
    "--d_ff",
    "128",
    "--context_length",
    "64",
    "--vocab_size",
    "300",
]
QUIET = ["--device", "cpu", "--progress", "false", "--sample_tokens", "0", "--eval_iters", "1"]
# Tiny models gain nothing from a second thread, and lose a lot when another job holds the cores.
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def tinyllm_cli(*args, cwd, input=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "tinyllm", *map(str, args)],
        cwd=cwd,
        input=input,
        text=True,
        capture_output=True,
        timeout=timeout,
        env=ENV,
    )


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Pretrain on text, then fine-tune on Q&A from it twice: a 1-step run at a vanishing
    learning rate (to see what was loaded) and a run that learns the answers."""
    from tinyllm.data.corpus import bible_verses

    d = tmp_path_factory.mktemp("qa_runs")
    (d / "text.txt").write_text("\n".join(bible_verses()[:300]) + "\n", encoding="utf-8")
    (d / "qa.json").write_text(json.dumps(QA), encoding="utf-8")
    ok(
        tinyllm_cli(
            "train",
            "--data",
            "text.txt",
            "--out_dir",
            "pre",
            *MODEL,
            *QUIET,
            "--max_iters",
            "30",
            "--batch_size",
            "8",
            "--eval_interval",
            "30",
            cwd=d,
        )
    )
    ok(
        tinyllm_cli(
            "train",
            "--data",
            "qa.json",
            "--init_from",
            "pre/latest.pt",
            "--out_dir",
            "probe",
            *QUIET,
            "--max_iters",
            "1",
            "--max_lr",
            "1e-9",
            "--warmup_iters",
            "0",
            cwd=d,
        )
    )
    ok(
        tinyllm_cli(
            "train",
            "--data",
            "qa.json",
            "--init_from",
            "pre/latest.pt",
            "--out_dir",
            "ft",
            *QUIET,
            "--max_iters",
            "120",
            "--max_lr",
            "3e-3",
            "--warmup_iters",
            "10",
            "--eval_interval",
            "60",
            cwd=d,
        )
    )
    return d


# ---- fine-tuning ------------------------------------------------------------------------------


def test_init_from_loads_weights_and_tokenizer_and_starts_at_step_0(runs):
    pre = torch.load(runs / "pre" / "latest.pt", weights_only=True)
    probe = torch.load(runs / "probe" / "latest.pt", weights_only=True)
    assert pre["step"] == 30 and probe["step"] == 1  # step 0 + 1 step, not 30 + 1
    assert probe["is_qa"] is True and not pre.get("is_qa")
    assert probe["tokenizer"] == pre["tokenizer"]  # the pretrained tokenizer, not one trained on the Q&A
    assert (
        probe["model_config"]["d_model"] == 64
        and probe["model_config"]["vocab_size"] == pre["model_config"]["vocab_size"]
    )
    for name, w in pre["model"].items():  # the pretrained weights (one step at lr 1e-9 moves nothing)
        assert torch.allclose(probe["model"][name], w, atol=1e-6), name
    rows = [json.loads(line) for line in (runs / "probe" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 1
    # the optimizer starts fresh: its step counters count the fine-tuning steps only
    steps = [float(s["step"]) for s in probe["optimizer"]["state"].values()]
    assert steps and all(s == 1.0 for s in steps)


def test_fine_tuned_checkpoint_is_qa_and_learns_the_answers(runs):
    model, tok, info = tinyllm.load_checkpoint(runs / "ft" / "latest.pt")
    assert info["is_qa"] is True and info["step"] == 120
    from tinyllm.generate import answer

    got = [answer(model, tok, p["question"]) for p in QA]
    assert got == [p["answer"] for p in QA]


# ---- generate ----------------------------------------------------------------------------------


def test_generate_wraps_the_question_and_prints_only_the_answer(runs):
    r = ok(
        tinyllm_cli(
            "generate", "--checkpoint", "ft/latest.pt", "--prompt", "Who are you?", "--temperature", "0", cwd=runs
        )
    )
    assert r.stdout == "I am a tiny test model.\n"  # no leading space, no <EOS>, nothing after it


def test_generate_raw_does_not_wrap(runs):
    template = "<BOS> Question: What is two plus two?\nAnswer:"
    r = ok(
        tinyllm_cli(
            "generate", "--checkpoint", "ft/latest.pt", "--prompt", template, "--raw", "--temperature", "0", cwd=runs
        )
    )
    assert r.stdout == " Four. \n"  # the model's own text after the prompt, template spaces and all
    r = ok(
        tinyllm_cli(
            "generate",
            "--checkpoint",
            "ft/latest.pt",
            "--prompt",
            "What is two plus two?",
            "--raw",
            "--temperature",
            "0",
            "--max_tokens",
            "8",
            cwd=runs,
        )
    )
    assert r.stdout != "Four.\n"


# ---- chat ------------------------------------------------------------------------------------


def test_chat_over_stdin_answers_and_takes_settings(runs):
    script = (
        "Who are you?\n/temp 0.7\n/top_k 40\n/top_p 0.9\n/settings\n/top_p 2\n/temp hot\n/nope\n"
        "What colour is the sky?\n"
    )
    r = ok(tinyllm_cli("chat", "--checkpoint", "ft/latest.pt", "--seed", "0", cwd=runs, input=script))
    answers = r.stdout.splitlines()
    assert answers[0] == "I am a tiny test model."
    assert len(answers) == 2 and answers[1]  # the second question sampled at the new settings
    err = r.stderr
    for ack in (
        "temperature set to 0.7",
        "top_k set to 40",
        "top_p set to 0.9",
        "temperature 0.7, top_k 40, top_p 0.9, max_tokens 200",
        "/top_p 2: must be a number in (0, 1]",
        "/temp needs one value: a number >= 0",
        "unknown command /nope",
    ):
        assert ack in err, (ack, err)
    assert "Traceback" not in err


def test_chat_sigint_exits_cleanly(runs):
    # SIGINT is restored for the child in case the test runner was started with it ignored
    p = subprocess.Popen(
        [sys.executable, "-m", "tinyllm", "chat", "--checkpoint", "ft/latest.pt"],
        cwd=runs,
        env=ENV,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        p.stdin.write("Where do fish live?\n")
        p.stdin.flush()
        assert p.stdout.readline() == "In water.\n"  # it is now waiting for the next line
        time.sleep(0.5)  # as a person would: a signal that lands before the read starts waits for input (CPython)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs pty.fork")
@pytest.mark.parametrize("key", [b"\x04", b"\x03"], ids=["ctrl-d", "ctrl-c"])
def test_chat_in_a_terminal_streams_and_exits_on_ctrl_d_or_ctrl_c(runs, key):
    import pty
    import select

    def read_until(fd, needle, timeout=60.0):
        buf, end = b"", time.monotonic() + timeout
        while needle not in buf:
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise AssertionError(f"timed out waiting for {needle!r}; got {buf!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buf += chunk
        return buf

    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        try:
            os.chdir(runs)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execve(sys.executable, [sys.executable, "-m", "tinyllm", "chat", "--checkpoint", "ft/latest.pt"], ENV)
        finally:
            os._exit(127)
    try:
        out = read_until(fd, b"you> ")
        os.write(fd, b"/top_k 40\r")
        out += read_until(fd, b"you> ", 30)
        os.write(fd, b"Who are you?\r")
        out += read_until(fd, b"you> ")
        time.sleep(0.5)  # as a person would: a ^C between the prompt and readline's select() waits for input
        os.write(fd, key)
        out += read_until(fd, b"\0", 30)  # until the child closes the terminal
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    text = out.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "top_k set to 40" in text
    assert "Who are you?\r\nI am a tiny test model.\r\nyou> " in text
    assert "Traceback" not in text


def test_chat_commands_and_cli_flags_share_one_range_check():
    """/temp inf is refused as --temperature inf is (it used to be accepted by chat alone)."""
    import argparse
    import math

    from tinyllm.cli.generate import check_sampling_flags as _check_sampling
    from tinyllm.errors import TinyLLMError
    from tinyllm.generate.chat import apply_command

    def flags(**kw):
        return argparse.Namespace(
            **{"temperature": 0.0, "seed": None, "top_k": None, "top_p": None, "max_tokens": 200, **kw}
        )

    settings = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "max_tokens": 200}
    for cmd, flag, value in (
        ("/temp", "temperature", "inf"),
        ("/temp", "temperature", "nan"),
        ("/temp", "temperature", "-1"),
        ("/top_p", "top_p", "2"),
        ("/top_k", "top_k", "-3"),
        ("/max_tokens", "max_tokens", "0"),
    ):
        msg = apply_command(f"{cmd} {value}", settings)
        assert msg.startswith(f"{cmd} {value}: must be "), msg
        with pytest.raises(TinyLLMError, match=f"--{flag} must be"):
            _check_sampling(flags(**{flag: (float if flag in ("temperature", "top_p") else int)(value)}))
    assert settings == {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "max_tokens": 200}  # nothing changed
    assert apply_command("/temp 1e300", settings) == "temperature set to 1e+300"
    _check_sampling(flags(temperature=1e300))
    assert apply_command("/top_k 0", settings) == "top_k set to 0 (off)"  # chat's off; the flag's is to leave it out
    assert math.isfinite(settings["temperature"])
