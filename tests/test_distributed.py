"""torchrun on CPU (gloo): 2 ranks end where 1 rank with twice the accumulation ends, two
torchrun launches rendezvous as two nodes, --compile works under DDP, and the rank slices."""

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from launch_helpers import check_exit, torchrun_env

from tinyllm.data.tokens import part_bounds
from tinyllm.errors import TinyLLMError
from tinyllm.train import distributed as D
from tinyllm.train.batches import slice_batch

ROOT = Path(__file__).resolve().parents[1]
FLAGS = (
    "--d_model 32 --n_layers 2 --n_heads 2 --d_ff 64 --context_length 32 --vocab_size 300 "
    "--batch_size 4 --max_iters 6 --warmup_iters 2 --max_lr 1e-2 --eval_interval 3 --eval_iters 2 "
    "--checkpoint_interval 3 --sample_tokens 0 --seed 3 --device cpu --progress false"
).split()
ENV = torchrun_env()
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def run(cmd, timeout=300, cwd=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd)
    check_exit(r.stderr)
    return r


def weights(out: Path) -> dict:
    return torch.load(out / "latest.pt", weights_only=True)["model"]


def assert_close_weights(a: dict, b: dict, **tol):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=lambda m, k=k: f"{k}: {m}", **tol)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory, corpus):
    """1 process, 2 micro-batches per step: the reference for the 2-rank runs."""
    out = tmp_path_factory.mktemp("one") / "out"
    r = run(
        [
            sys.executable,
            "-m",
            "tinyllm",
            "train",
            "--data",
            corpus,
            "--out_dir",
            out,
            *FLAGS,
            "--grad_accumulation_steps",
            "2",
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_two_ranks_end_with_the_weights_of_one_rank_with_double_accumulation(tmp_path, corpus, one_rank):
    """TinyLLM's spelling through the thin train.py: torchrun --nproc_per_node=2 train.py ..."""
    out = tmp_path / "out"
    r = run(
        [
            *TORCHRUN,
            "--standalone",
            "--nproc_per_node=2",
            str(ROOT / "train.py"),
            "--data",
            corpus,
            "--out_dir",
            out,
            *FLAGS,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on cpu x 2 ranks" in r.stderr
    assert r.stderr.count("done: 6 steps") == 1  # only rank 0 reports
    assert_close_weights(weights(out), weights(one_rank), rtol=1e-5, atol=1e-6)
    # only rank 0 evaluates and writes: one metrics row per evaluation, one set of checkpoints
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 3, 6]
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert ckpt["data_position"]["world_size"] == 2 and len(ckpt["rng_per_rank"]) == 2


def test_two_torchrun_launches_rendezvous_as_two_nodes(tmp_path, corpus, one_rank):
    """Two `torchrun --nnodes=2` launches on localhost meet through the c10d rendezvous."""
    out = tmp_path / "out"
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={i}",
                "--rdzv_backend=c10d",
                f"--rdzv_endpoint=localhost:{port}",
                "--rdzv_id=tinyllm-test",
                "-m",
                "tinyllm",
                "train",
                "--data",
                str(corpus),
                "--out_dir",
                str(out),
                *FLAGS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        for i in range(2)
    ]
    # drain both pipes at once: a launch blocked on a full pipe would stall the other at its exit barrier
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(p.communicate, timeout=240) for p in procs]
        try:
            results = [(None, f.result()[0]) for f in futures]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            logs = [
                f"--- launch {i} ---\n{(f.result()[0] if f.done() and not f.exception() else '')[-2000:]}"
                for i, f in enumerate(futures)
            ]
            pytest.fail("two-node launch timed out\n" + "\n".join(logs))
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    # exactly one launch hosts rank 0, and only it logs
    assert sum("done: 6 steps" in err for _, err in results) == 1
    assert sum("on cpu x 2 ranks" in err for _, err in results) == 1
    assert_close_weights(weights(out), weights(one_rank), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compile_under_ddp_with_accumulation_matches_eager(tmp_path, corpus):
    """--compile with 2 ranks x 2 micro-steps (no_sync on the first) against eager 1 rank x 4.
    Dropout off: compiled dropout draws other masks than eager."""
    flags = [*FLAGS, "--dropout", "0", "--max_iters", "3", "--eval_interval", "3"]
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    r = run(
        [
            sys.executable,
            "-m",
            "tinyllm",
            "train",
            "--data",
            corpus,
            "--out_dir",
            eager,
            *flags,
            "--grad_accumulation_steps",
            "4",
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(
        [
            *TORCHRUN,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tinyllm",
            "train",
            "--data",
            corpus,
            "--out_dir",
            compiled,
            *flags,
            "--grad_accumulation_steps",
            "2",
            "--compile",
        ],
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "compiled" in r.stderr
    assert_close_weights(weights(compiled), weights(eager), rtol=1e-3, atol=1e-4)


# ---- pieces, in-process -----------------------------------------------------------------------


def test_rank_slices_partition_the_token_stream():
    import numpy as np

    from tinyllm.data.tokens import TokenDataset

    ids = np.arange(1000, dtype=np.uint16)
    ds = TokenDataset([ids[:600], ids[600:]], context_length=8)
    parts = 4  # e.g. 2 ranks x 2 micro-steps
    for g in range(parts):
        x, y = slice_batch(ds, torch.Generator().manual_seed(g), 64, g, parts)
        assert x.shape == y.shape == (64, 8) and torch.equal(x[:, 1:], y[:, :-1])
        starts = x[:, 0]
        # the 984 valid starts (592 + 392) split into 4 slices of 246
        lo_, hi_ = part_bounds(984, g, parts)
        to_id = lambda s: s if s < 592 else s - 592 + 600
        assert to_id(lo_) <= starts.min() and starts.max() <= to_id(hi_ - 1)
    # one slice: the same windows as TokenDataset.sample
    a = slice_batch(ds, torch.Generator().manual_seed(7), 16)
    b = ds.sample(torch.Generator().manual_seed(7), 16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert part_bounds(3, 5, 8) == (1, 2)  # more parts than items: never empty


def test_torchrun_environment_is_read_and_checked(monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    info = D.dist_info()
    assert (info.rank, info.world_size, info.enabled, info.is_main) == (0, 1, False, True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    info = D.dist_info()
    assert (info.rank, info.local_rank, info.world_size, info.enabled, info.is_main) == (3, 1, 4, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(TinyLLMError, match="RANK=4"):
        D.dist_info()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(TinyLLMError, match="RANK='x' is not an integer"):
        D.dist_info()


def test_a_group_made_by_setup_is_freed_by_teardown_even_after_fsdp_is_imported():
    """torch.distributed.nn's collectives default to `group=group.WORLD`, evaluated at import: FSDP
    imports it, and imported after the group exists, those defaults would hold the group past
    destroy_process_group (and its gloo threads past the run). setup() imports it first. A fresh
    process: in this one it may long be imported."""
    script = """
import os, sys, torch.distributed as dist
from tinyllm.train import distributed as D
info, _ = D.setup("cpu", need_group=True)
import torch.distributed.fsdp, torch.distributed.nn.functional as F
held = [n for n, f in vars(F).items() if dist.group.WORLD in (getattr(f, "__defaults__", None) or ())]
D.teardown(info)
gloo = [n for t in os.listdir("/proc/self/task") if "gloo" in (n := open(f"/proc/self/task/{t}/comm").read())]
print(held, len(gloo))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["[]", "0"], r.stdout
