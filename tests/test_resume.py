"""Exact resume and faults, on CPU: SIGKILL / SIGTERM / an elastic restart mid-run, then
`--resume auto`, end bit-identical to an uninterrupted run; NaN stops; foreign configs refuse."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tinyllm.errors import TinyLLMError
from tinyllm.train.checkpoint import FORMAT, FORMAT_VERSION, TrainState, clean_stale_temp, read_file

N = 120  # steps: long enough that a kill at the first checkpoint lands well before the end
FLAGS = (
    f"--d_model 32 --n_layers 2 --n_heads 2 --d_ff 64 --context_length 32 --vocab_size 300 "
    f"--batch_size 8 --max_iters {N} --warmup_iters 10 --max_lr 3e-3 --eval_interval 40 --eval_iters 2 "
    f"--checkpoint_interval 10 --keep_checkpoints 3 --grad_accumulation_steps 2 --sample_tokens 0 "
    f"--seed 5 --device cpu --progress false --resume auto"
).split()
# one thread: bit-identity needs the same reduction order in every run, and 2 OpenMP threads on a
# shared 2-core machine are slower, not faster, for a model this small
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(corpus, out, *extra):
    return [
        sys.executable,
        "-m",
        "tinyllm",
        "train",
        "--data",
        str(corpus),
        "--out_dir",
        str(out),
        *FLAGS,
        *map(str, extra),
    ]


def run(cmd, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


def weights(out: Path) -> dict:
    return torch.load(out / "latest.pt", weights_only=True)["model"]


def assert_bit_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs by up to {(a[k] - b[k]).abs().max().item():.3g}"


def wait_for(path: Path, proc: subprocess.Popen, timeout=120.0):
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended (rc {proc.returncode}) before {path} appeared: {proc.stderr.read()[-2000:]}"
            )
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout}s")
        time.sleep(0.002)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, corpus):
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("baseline") / "out"
    r = run(train_cmd(corpus, out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no checkpoint at" in r.stderr  # --resume auto with nothing to resume starts fresh
    return out


def test_checkpoint_holds_everything_for_an_exact_resume(baseline):
    raw = read_file(baseline / "latest.pt")
    assert (raw["format"], raw["version"]) == (FORMAT, FORMAT_VERSION)
    # the schema's fields, and nothing that nothing reads
    assert set(raw) == {
        "format",
        "version",
        "model",
        "optimizer",
        "model_config",
        "model_request",
        "tokenizer",
        "train_config",
        "step",
        "best_val_loss",
        "data_position",
        "rng_per_rank",
        "is_qa",
    }
    state = TrainState.load(baseline / "latest.pt")
    assert state.step == N and len(state.rng_per_rank) == 1
    assert set(state.rng_per_rank[0]) >= {"python", "numpy", "torch"}
    assert state.data_position.next_step == N and state.data_position.micro_batches_per_step == 2
    assert state.train_config["max_iters"] == N


def test_a_version_1_checkpoint_converts_and_an_unknown_version_is_refused(baseline, tmp_path):
    """v1 files (a duplicate 'rng', plus 'lr_schedule' and 'n_params' that nothing read) still load
    and resume; a version this tinyllm does not know is refused naming both versions."""
    v2 = read_file(baseline / "latest.pt")
    v1 = {k: v for k, v in v2.items() if k != "rng_per_rank"}
    v1.update(
        version=1,
        rng=v2["rng_per_rank"][0],
        rng_per_rank=v2["rng_per_rank"],
        n_params=123,
        lr_schedule={"next_step": N},
    )
    torch.save(v1, tmp_path / "v1.pt")
    old, new = TrainState.load(tmp_path / "v1.pt"), TrainState.load(baseline / "latest.pt")
    assert old.meta().keys() == new.meta().keys()
    assert torch.equal(old.rng_per_rank[0]["torch"], new.rng_per_rank[0]["torch"]) and old.step == N
    del v1["rng_per_rank"]  # the oldest v1 files had only 'rng'
    torch.save(v1, tmp_path / "v1.pt")
    assert torch.equal(TrainState.load(tmp_path / "v1.pt").rng_per_rank[0]["torch"], v2["rng_per_rank"][0]["torch"])
    torch.save({**v2, "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(TinyLLMError, match=r"v99.pt: checkpoint format version 99 is not supported .*versions 1 and 2"):
        TrainState.load(tmp_path / "v99.pt")


def test_keeps_only_the_last_n_step_checkpoints(baseline):
    names = sorted(p.name for p in (baseline / "checkpoints").iterdir())
    assert names == ["step_0000100.pt", "step_0000110.pt", "step_0000120.pt"]
    assert_bit_identical(
        torch.load(baseline / "checkpoints" / names[-1], weights_only=True)["model"], weights(baseline)
    )
    assert not list(baseline.rglob("*.tmp"))


def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(tmp_path, corpus, baseline):
    out = tmp_path / "out"
    proc = subprocess.Popen(train_cmd(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for(out / "checkpoints" / "step_0000010.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = TrainState.load(out / "latest.pt").step
    assert 10 <= killed_at < N, "the run was not interrupted mid-way"

    r = run(train_cmd(corpus, out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming from {out / 'latest.pt'} at step {killed_at}" in r.stderr
    assert_bit_identical(weights(out), weights(baseline))
    # metrics.jsonl: every evaluation once, as in the uninterrupted run
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 40, 80, 120]


def test_sigterm_saves_a_checkpoint_and_exits_0_then_resume_is_bit_identical(tmp_path, corpus, baseline):
    out = tmp_path / "out"
    proc = subprocess.Popen(train_cmd(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for(out / "checkpoints" / "step_0000010.pt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    stopped_at = TrainState.load(out / "latest.pt").step
    assert f"stopped by SIGTERM at step {stopped_at}; checkpoint saved" in err
    assert 10 <= stopped_at < N

    r = run(train_cmd(corpus, out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert_bit_identical(weights(out), weights(baseline))


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker through /proc (Linux)")
def test_elastic_restart_resumes_from_the_last_checkpoint(tmp_path, corpus, baseline):
    """torchrun --max-restarts=1: kill the worker after a checkpoint; the agent starts a new one,
    which resumes (--resume auto) and ends where the uninterrupted run ends."""
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        "--max-restarts=1",
        "-m",
        "tinyllm",
        *train_cmd(corpus, out)[3:],
    ]
    agent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for(out / "checkpoints" / "step_0000010.pt", agent)
    workers = _children(agent.pid)
    assert workers, "no worker process found under torchrun"
    for w in workers:
        os.kill(w, signal.SIGKILL)
    _, err = agent.communicate(timeout=300)
    assert agent.returncode == 0, err[-3000:]
    assert "resuming from" in err
    assert_bit_identical(weights(out), weights(baseline))


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, corpus):
    out = tmp_path / "out"
    # lr 1e8 blows the weights up at the first update: step 2's loss is NaN
    r = run(train_cmd(corpus, out, "--max_lr", "1e8", "--warmup_iters", "0", "--checkpoint_interval", "1"))
    assert r.returncode == 2, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: loss became nan at step 2;"), last
    assert f"Last good checkpoint: {out / 'latest.pt'} (after step 1)" in last
    assert "Traceback" not in r.stderr
    ckpt = TrainState.load(out / "latest.pt")
    assert ckpt.step == 1
    assert all(torch.isfinite(v).all() for v in ckpt.model.values())


def test_resume_with_a_different_model_refuses_naming_the_fields(tmp_path, corpus):
    out = tmp_path / "out"
    r = run(train_cmd(corpus, out, "--max_iters", "2", "--checkpoint_interval", "1", "--eval_interval", "2"))
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(train_cmd(corpus, out, "--max_iters", "2", "--d_model", "48", "--n_layers", "3"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith(f"error: cannot resume from {out / 'latest.pt'}: it holds a different model"), err
    assert "d_model: checkpoint 32 vs now 48" in err and "n_layers: checkpoint 2 vs now 3" in err
    assert "n_heads" not in err  # only the fields that differ
    # the same flags resume fine (dropout and the attention backend may change)
    r = run(train_cmd(corpus, out, "--max_iters", "3", "--dropout", "0", "--attention", "reference"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert TrainState.load(out / "latest.pt").step == 3


def test_an_interrupted_checkpoint_write_never_replaces_a_good_one(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    good = {"model": {"w": torch.ones(3)}, "model_config": {}, "tokenizer": "", "step": 1}
    TrainState(**good).save(path)

    def dies_half_way(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError):
        TrainState(**{**good, "step": 2}).save(path)
    monkeypatch.undo()
    assert TrainState.load(path).step == 1
    assert not list(tmp_path.glob(".*.tmp"))
    # a temp file left by a SIGKILL mid-write is swept at the next start; a truncated file is a clear error
    (tmp_path / ".latest.pt.abc123.tmp").write_bytes(b"PK\x03\x04")
    assert [p.name for p in clean_stale_temp(tmp_path)] == [".latest.pt.abc123.tmp"]
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(TinyLLMError, match=r"cut\.pt: not a readable checkpoint"):
        TrainState.load(tmp_path / "cut.pt")


def test_which_model_fields_a_resume_compares(tmp_path):
    """Flags and an explicit --preset are compared with what the checkpoint's run asked for;
    a vocab the corpus lowered, dropout and the attention backend are not."""
    from tinyllm.train.checkpoint import TrainState
    from tinyllm.train.presets import preset
    from tinyllm.train.resume import check_resumed_model
    from tinyllm.train.run_config import resolve_run

    asked = preset("demo").to_dict()
    ckpt = TrainState(model={}, model_config={**asked, "vocab_size": 300}, tokenizer="", model_request=asked)
    check_resumed_model(ckpt, "ck.pt", resolve_run("demo", dropout=0.2, attention="reference"))
    with pytest.raises(TinyLLMError, match=r"d_model: checkpoint 192 vs now 384; .*n_layers: checkpoint 4 vs now 6"):
        check_resumed_model(ckpt, "ck.pt", resolve_run("tiny"))
    check_resumed_model(ckpt, "ck.pt", resolve_run())  # nothing asked: theirs
    with pytest.raises(TinyLLMError, match=r"d_model: checkpoint 192 vs now 96\)"):
        check_resumed_model(ckpt, "ck.pt", resolve_run(d_model=96))
    old = TrainState(model={}, model_config={**asked, "vocab_size": 300}, tokenizer="")  # no model_request
    check_resumed_model(old, "ck.pt", resolve_run("demo", d_model=192))
