"""FSDP on CPU (gloo, torchrun --standalone --nproc_per_node=2): the same run as DDP, activation
checkpointing (same gradients, less saved memory), per-rank bytes, sharded checkpoints (SIGKILL +
resume bit-exact, resharded resume 2 -> 1 and 2 -> 3, consolidate -> generate) and the bad inputs."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from launch_helpers import check_exit, torchrun_env

from tinyllm.errors import TinyLLMError
from tinyllm.model import ModelConfig, TinyLLM
from tinyllm.train import sharded
from tinyllm.train.checkpoint import TrainState, load_checkpoint
from tinyllm.train.parallel import apply_activation_checkpointing

N = 40  # steps of the sharded-checkpoint runs; a checkpoint every 10, all kept
SEED = 5
FLAGS = {
    "--d_model": 32,
    "--n_layers": 2,
    "--n_heads": 2,
    "--d_ff": 64,
    "--context_length": 32,
    "--vocab_size": 300,
    "--batch_size": 4,
    "--max_iters": N,
    "--warmup_iters": 4,
    "--max_lr": 3e-3,
    "--eval_interval": 10,
    "--eval_iters": 2,
    "--checkpoint_interval": 10,
    "--keep_checkpoints": 10,
    "--sample_tokens": 0,
    "--seed": SEED,
    "--device": "cpu",
    "--progress": "false",
}
# one thread per rank: bit-identity needs the same reduction order in every run
ENV = torchrun_env()


def train_cmd(corpus, out, ranks: int, **flags):
    merged = {**FLAGS, **{f"--{k}": v for k, v in flags.items()}}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    args = ["-m", "tinyllm", "train", "--data", str(corpus), "--out_dir", str(out)]
    args += [str(a) for kv in merged.items() for a in kv]
    return (launcher if ranks > 0 else [sys.executable]) + args


def train(corpus, out, ranks: int, **flags) -> subprocess.CompletedProcess:
    """ranks = 0: one plain process, no torchrun."""
    r = subprocess.run(train_cmd(corpus, out, ranks, **flags), capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    check_exit(r.stderr)
    return r


def losses(out: Path) -> dict:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["train_loss"], r["val_loss"]) for r in rows}


def consolidated(src: Path, tmp: Path) -> TrainState:
    dst = tmp / f"consolidated-{time.monotonic_ns()}.pt"
    sharded.consolidate(src, dst)
    return TrainState.load(dst)


def flat(state_dict, prefix=""):
    """Optimizer state dicts nest: every tensor, by path."""
    if isinstance(state_dict, torch.Tensor):
        return {prefix: state_dict}
    if isinstance(state_dict, dict):
        return {k: v for key, sub in state_dict.items() for k, v in flat(sub, f"{prefix}/{key}").items()}
    if isinstance(state_dict, (list, tuple)):
        return {k: v for i, sub in enumerate(state_dict) for k, v in flat(sub, f"{prefix}/{i}").items()}
    return {prefix: state_dict}


def assert_same(a, b, exact: bool, **tol):
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], torch.Tensor):
            if exact:
                assert torch.equal(fa[k], fb[k]), f"{k} differs by {(fa[k] - fb[k]).abs().max().item():.3g}"
            else:
                torch.testing.assert_close(fa[k], fb[k], msg=lambda m, k=k: f"{k}: {m}", **tol)
        else:
            assert fa[k] == fb[k], k


def bytes_per_rank(stderr: str) -> list[int]:
    line = next(ln for ln in stderr.splitlines() if ln.startswith("memory per rank"))
    return [int(n.replace(",", "")) for n in re.findall(r"\(([\d,]+) bytes\)", line)]


# ---- training equivalence ----------------------------------------------------------------------
@pytest.mark.parametrize("accum,clip", [(1, 0.0), (2, 0.5)])
def test_fsdp_trains_like_ddp(corpus, tmp_path, accum, clip):
    """Same losses and final weights as DDP, up to float32 reduction order (FSDP reduce-scatters,
    DDP all-reduces in buckets): rtol 1e-4, atol 1e-5 after 24 steps at lr 3e-3. And each FSDP rank
    holds at most half of DDP's bytes plus one row of padding per tensor (FSDP2 shards dim 0)."""
    flags = dict(max_iters=24, eval_interval=8, checkpoint_interval=24, grad_accumulation_steps=accum, grad_clip=clip)
    rd = train(corpus, tmp_path / "ddp", 2, **flags)
    rf = train(corpus, tmp_path / "fsdp", 2, parallel="fsdp", **flags)
    ld, lf = losses(tmp_path / "ddp"), losses(tmp_path / "fsdp")
    assert ld.keys() == lf.keys() == {0, 8, 16, 24}
    for step in ld:
        torch.testing.assert_close(torch.tensor(lf[step]), torch.tensor(ld[step]), rtol=1e-4, atol=1e-5)
    ddp = TrainState.load(tmp_path / "ddp" / "latest.pt")
    fsdp = consolidated(tmp_path / "fsdp", tmp_path)
    assert_same(fsdp.model, ddp.model, exact=False, rtol=1e-4, atol=1e-5)
    assert_same(fsdp.optimizer["state"], ddp.optimizer["state"], exact=False, rtol=1e-3, atol=1e-6)

    k, cfg = 2, ModelConfig.from_dict(ddp.model_config)
    model = TinyLLM(cfg)
    rows = sum(p[0].numel() * 4 if p.dim() > 1 else 4 for p in model.parameters())  # one dim-0 row of each
    remainder = 4 * rows + 8 * len(list(model.parameters()))  # + AdamW's step counters (not sharded)
    (ddp_bytes,) = set(bytes_per_rank(rd.stderr))
    for r, b in enumerate(bytes_per_rank(rf.stderr)):
        assert b <= ddp_bytes / k + remainder, f"rank {r}: {b} bytes > {ddp_bytes} / {k} + {remainder}"
    assert ddp_bytes == 4 * 4 * model.num_params() + 4 * len(list(model.parameters()))  # params, grads, 2 moments


# ---- activation checkpointing ------------------------------------------------------------------
def tiny(n_layers: int, dropout: float) -> TinyLLM:
    cfg = ModelConfig(
        vocab_size=97, d_model=24, n_layers=n_layers, n_heads=3, d_ff=40, context_length=29, dropout=dropout
    )
    return TinyLLM(cfg)


def grads_and_saved_bytes(model, x, y, seed: int):
    """(gradient of every parameter, bytes autograd holds for the backward, counted once per storage)."""
    held = {}

    def pack(t):
        held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    torch.manual_seed(seed)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _, loss = model(x, y)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, sum(held.values())


def test_activation_checkpointing_same_gradients_less_memory():
    """Same gradients with dropout on (the recompute replays the RNG), and at least 2x fewer bytes
    held by autograd on a 4-layer model (only each block's input is kept)."""
    torch.manual_seed(0)
    plain = tiny(4, dropout=0.1)
    ckpt = tiny(4, dropout=0.1)
    ckpt.load_state_dict(plain.state_dict())
    apply_activation_checkpointing(ckpt)
    x, y = torch.randint(0, 97, (3, 27)), torch.randint(0, 97, (3, 27))
    g_plain, held_plain = grads_and_saved_bytes(plain, x, y, seed=11)
    g_ckpt, held_ckpt = grads_and_saved_bytes(ckpt, x, y, seed=11)
    assert g_plain.keys() == g_ckpt.keys()
    for n in g_plain:
        torch.testing.assert_close(g_ckpt[n], g_plain[n], rtol=1e-5, atol=1e-7, msg=lambda m, n=n: f"{n}: {m}")
    assert held_plain >= 2 * held_ckpt, f"autograd holds {held_plain} bytes without, {held_ckpt} with"


def test_activation_checkpointing_trains_under_fsdp(corpus, tmp_path):
    """--activation_checkpointing full under FSDP on 2 ranks: the losses of the run without it."""
    flags = dict(max_iters=8, eval_interval=4, checkpoint_interval=8, parallel="fsdp")
    train(corpus, tmp_path / "plain", 2, **flags)
    train(corpus, tmp_path / "ac", 2, activation_checkpointing="full", **flags)
    a, b = losses(tmp_path / "plain"), losses(tmp_path / "ac")
    for step in a:
        torch.testing.assert_close(torch.tensor(b[step]), torch.tensor(a[step]), rtol=1e-5, atol=1e-6)


# ---- sharded checkpoints -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory, corpus):
    """An uninterrupted FSDP run on 2 ranks with a sample at the end: what the others must reproduce."""
    out = tmp_path_factory.mktemp("fsdp_baseline") / "out"
    r = train(corpus, out, 2, parallel="fsdp", sample_tokens=16)
    return out, r


def test_sharded_checkpoint_layout(baseline):
    out, _ = baseline
    assert (out / "latest.dcp").is_symlink() and (out / "latest.dcp").resolve().name == f"step_{N:07d}.dcp"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step_{s:07d}.dcp" for s in (10, 20, 30, 40)]
    folder = out / "latest.dcp"
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata", "meta.pt"} <= {p.name for p in folder.iterdir()}
    meta = sharded.read_meta(folder)
    assert meta.step == N and len(meta.rng_per_rank) == 2 and meta.data_position.micro_batches_per_step == 2
    assert meta.train_config["parallel"] == "fsdp"


def test_sigkill_then_resume_is_bit_exact(baseline, corpus, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(corpus, out, 2, parallel="fsdp", resume="auto"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    t0 = time.monotonic()
    while not (out / "latest.dcp").exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() - t0 < 120
        time.sleep(0.002)
    # torchrun and both ranks, mid-run (the ranks are not in torchrun's process group)
    ranks = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    for pid in [proc.pid, *ranks]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    for pid in ranks:  # gone before the resumed run starts writing the same folder
        while "zombie" not in (Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}").exists() else "zombie"):
            time.sleep(0.01)
    killed_at = sharded.read_meta(out / "latest.dcp").step
    assert killed_at < N
    r = train(corpus, out, 2, parallel="fsdp", resume="auto")
    assert f"at step {killed_at}" in r.stderr
    a, b = consolidated(out, tmp_path), consolidated(baseline[0], tmp_path)
    assert_same(a.model, b.model, exact=True)
    assert_same(a.optimizer, b.optimizer, exact=True)
    assert a.rng_per_rank[1]["torch"].equal(b.rng_per_rank[1]["torch"])


@pytest.mark.parametrize("ranks,accum", [(1, 2), (3, 1)])
def test_resharded_resume(baseline, corpus, tmp_path, ranks, accum):
    """Step 20's checkpoint of the 2-rank run, resumed on 1 rank x accum 2 (the same 2 micro-batches
    per step: the same batches, so the same run up to reduction order) and on 3 ranks (3 micro-
    batches per step: other batches, so only the loss level carries on)."""
    base, _ = baseline
    out = tmp_path / "resharded"
    r = train(
        corpus, out, ranks, parallel="fsdp", resume=base / "checkpoints/step_0000020.dcp", grad_accumulation_steps=accum
    )
    assert "at step 20" in r.stderr
    mine, theirs = losses(out), losses(base)
    assert sorted(mine) == [30, 40]
    resumed = consolidated(out, tmp_path)
    if ranks * accum == 2:
        for step in mine:
            torch.testing.assert_close(torch.tensor(mine[step]), torch.tensor(theirs[step]), rtol=1e-4, atol=1e-5)
        assert_same(resumed.model, consolidated(base, tmp_path).model, exact=False, rtol=1e-4, atol=1e-5)
    else:
        assert "not on the batches the first run would have seen" in r.stderr
        # no jump: the loss right after resuming is where the 2-rank run's was (a fresh model: ~5.7)
        for step in mine:
            assert abs(mine[step][1] - theirs[step][1]) < 0.05, (step, mine[step], theirs[step])


def test_consolidate_then_generate_matches_the_runs_sample(baseline, tmp_path):
    """`tinyllm checkpoint consolidate` -> the file `tinyllm generate` reads -> rank 0's sample text."""
    from tinyllm.generate import generate

    out, r = baseline
    ckpt = tmp_path / "model.pt"
    c = subprocess.run(
        [sys.executable, "-m", "tinyllm", "checkpoint", "consolidate", str(out), "--out", str(ckpt)],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert c.returncode == 0, c.stderr
    assert c.stderr.strip() == f"wrote {ckpt} (step {N}) from {(out / 'latest.dcp').resolve()}"
    sample = r.stdout.rstrip("\n")
    model, tok, info = load_checkpoint(ckpt)
    assert info["step"] == N
    # the sample's prompt is the val text's first four words; the 4th may run into the continuation
    words = sample.split(" ")
    candidates = [" ".join(words[:3]) + " " + words[3][:i] for i in range(1, len(words[3]) + 1)]
    texts = {p: p + generate(model, tok, p, 16, temperature=0.8, top_k=40, seed=SEED) for p in candidates}
    assert sample in texts.values(), (sample, texts)
    g = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllm",
            "generate",
            "--checkpoint",
            str(ckpt),
            "--max_tokens",
            "16",
            "--temperature",
            "0.8",
            "--top_k",
            "40",
            "--seed",
            str(SEED),
            "--prompt",
            next(p for p, t in texts.items() if t == sample),
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert g.returncode == 0 and sample.endswith(g.stdout.rstrip("\n")), (g.stdout, g.stderr)


# ---- bad input ---------------------------------------------------------------------------------
def test_sharded_folder_is_named_to_consolidate(baseline):
    out, _ = baseline
    for path in (out, out / "latest.dcp", out / "checkpoints" / "step_0000010.dcp"):
        with pytest.raises(TinyLLMError, match=r"sharded \(FSDP\) checkpoint.*tinyllm checkpoint consolidate"):
            load_checkpoint(path)
    g = subprocess.run(
        [sys.executable, "-m", "tinyllm", "generate", "--checkpoint", str(out / "latest.dcp")],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert g.returncode == 2 and g.stderr.count("\n") == 1 and "tinyllm checkpoint consolidate" in g.stderr


def test_missing_shard_is_named(baseline, tmp_path):
    folder = tmp_path / "step.dcp"
    shutil.copytree(baseline[0] / "checkpoints" / "step_0000010.dcp", folder)
    (folder / "__1_0.distcp").unlink()
    with pytest.raises(TinyLLMError, match=r"shard file __1_0.distcp \(rank 1\) is missing"):
        sharded.read_meta(folder)
    c = subprocess.run(
        [sys.executable, "-m", "tinyllm", "checkpoint", "consolidate", str(folder), "--out", str(tmp_path / "x.pt")],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert c.returncode == 2 and "__1_0.distcp (rank 1) is missing" in c.stderr and "Traceback" not in c.stderr
    assert not (tmp_path / "x.pt").exists()


def test_one_process_fsdp_and_switching_parallel(corpus, tmp_path):
    """--parallel fsdp without torchrun runs (a process group of one); its sharded checkpoint resumes
    under --parallel ddp, and that run's latest.pt (newer) resumes under fsdp on 2 ranks."""
    out = tmp_path / "out"
    train(corpus, out, 0, parallel="fsdp", max_iters=10)
    assert sharded.read_meta(out / "latest.dcp").step == 10 and not (out / "latest.pt").exists()
    r = train(corpus, out, 0, parallel="ddp", max_iters=20, resume="auto")
    assert "step_0000010.dcp at step 10" in r.stderr
    assert TrainState.load(out / "latest.pt").step == 20
    r = train(corpus, out, 2, parallel="fsdp", max_iters=30, resume="auto")
    assert f"resuming from {out / 'latest.pt'} at step 20" in r.stderr
    assert sharded.read_meta(out / "latest.dcp").step == 30


@pytest.mark.slow
def test_compile_per_block_under_fsdp_matches_eager(corpus, tmp_path):
    """--compile with --parallel fsdp (each block compiled, as torchtitan does) on 2 ranks x 2 micro-steps
    gives the eager FSDP run's losses and weights, up to float32 rounding. Dropout off: compiled dropout
    draws other masks than eager."""
    flags = dict(max_iters=3, eval_interval=3, checkpoint_interval=3, grad_accumulation_steps=2, dropout=0)
    train(corpus, tmp_path / "eager", 2, parallel="fsdp", **flags)
    r = train(corpus, tmp_path / "compiled", 2, parallel="fsdp", compile="true", **flags)
    assert "compiled" in r.stderr and "FSDP" in r.stderr
    le, lc = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert le.keys() == lc.keys() == {0, 3}
    for step in le:
        torch.testing.assert_close(torch.tensor(lc[step]), torch.tensor(le[step]), rtol=1e-4, atol=1e-5)
    eager = consolidated(tmp_path / "eager", tmp_path)
    compiled = consolidated(tmp_path / "compiled", tmp_path)
    assert_same(compiled.model, eager.model, exact=False, rtol=1e-4, atol=1e-5)
