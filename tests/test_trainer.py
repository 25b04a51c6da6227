"""End to end on CPU: `tinyllm train` -> metrics, plot, checkpoints -> load -> generate."""

import json
import sys

import pytest
import torch

import tinyllm
from tinyllm.generate import generate_ids
from tinyllm.train.schedule import lr_at

# A model small enough to train in seconds; every flag spelled as TinyLLM's users type them.
TINY = (
    "--d_model 32 --n_layers 2 --n_heads 2 --d_ff 64 --context_length 32 --vocab_size 300 "
    "--batch_size 8 --max_iters 40 --warmup_iters 5 --max_lr 3e-3 --eval_interval 10 --eval_iters 2 "
    "--checkpoint_interval 20 --sample_tokens 16 --seed 0 --device cpu --progress false"
).split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 120 kB slice of the Bible as a plain text file (the --data PATH route): 1,200 verses, one
    paragraph (document) each, so the val split holds verses the model never trains on."""
    from tinyllm.data.corpus import bible_verses

    path = tmp_path_factory.mktemp("corpus") / "kjv.txt"
    path.write_text("\n\n".join(bible_verses()[:1200]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """One tiny training run shared by the tests below: -> (out_dir, CompletedProcess)."""
    import os
    import subprocess

    out = tmp_path_factory.mktemp("run") / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tinyllm", "train", "--data", str(corpus), "--out_dir", str(out), *TINY],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_run_writes_metrics_plot_and_checkpoints(trained):
    out, proc = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40]
    for r in rows:
        for key in ("step", "train_loss", "val_loss", "lr", "tokens_per_sec"):
            assert key in r, (key, r)
    assert all(r["tokens_per_sec"] > 0 for r in rows[1:])
    # the val loss is measured on held-out verses, not on the training text
    meta = json.loads((out / "data" / "meta.json").read_text())
    assert meta["train_documents"] + meta["val_documents"] == 1200 and meta["val_documents"] >= 100, meta
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 0.5, "training did not lower the val loss"
    png = (out / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    for name in ("latest.pt", "best.pt"):
        assert (out / name).stat().st_size > 0
    assert not list(out.glob("*.tmp*")), "a temp file was left behind"
    # status goes to stderr; stdout carries only the sample
    assert "unigram entropy" in proc.stderr
    assert "step" not in proc.stdout and proc.stdout.strip()


def test_lr_follows_warmup_then_cosine(trained):
    out, _ = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:  # a row's lr is the one its last step used
        assert r["lr"] == pytest.approx(lr_at(max(r["step"] - 1, 0), 3e-3, 3e-4, 5, 40), rel=1e-6)
    assert lr_at(0, 1.0, 0.1, 10, 100) == pytest.approx(0.1)  # warmup starts at max_lr/warmup
    assert lr_at(9, 1.0, 0.1, 10, 100) == pytest.approx(1.0)  # reaches max_lr at the end of warmup
    assert lr_at(100, 1.0, 0.1, 10, 100) == pytest.approx(0.1)  # cosine ends at min_lr
    assert lr_at(55, 1.0, 0.1, 10, 100) == pytest.approx(0.55, abs=0.01)  # halfway down


def test_checkpoint_carries_everything_and_reloads_identically(trained):
    out, _ = trained
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    for key in ("model", "optimizer", "model_config", "step", "tokenizer", "rng_per_rank", "train_config"):
        assert key in ckpt, key
    assert ckpt["step"] == 40
    model, _, info = tinyllm.load_checkpoint(out / "latest.pt")
    assert not model.training and info["step"] == 40


def test_a_loaded_checkpoint_computes_what_the_trained_model_computed(corpus, tmp_path):
    """The weights written are the live model's: the reloaded model's logits equal the trained
    model's, bit for bit, on a held-out text (not merely two loads of the same file agreeing)."""
    from tinyllm.train import Trainer, resolve_run

    flags = dict(zip(TINY[::2], TINY[1::2]))
    settings = {k.lstrip("-"): v for k, v in flags.items()}
    for k in (
        "d_model",
        "n_layers",
        "n_heads",
        "d_ff",
        "context_length",
        "vocab_size",
        "batch_size",
        "warmup_iters",
        "eval_interval",
        "eval_iters",
        "checkpoint_interval",
        "sample_tokens",
        "seed",
    ):
        settings[k] = int(settings[k])
    settings.update(max_lr=3e-3, max_iters=6, progress=False, data=str(corpus), out_dir=str(tmp_path / "o"))
    trainer = Trainer(resolve_run(**settings))
    trainer.run()
    live = trainer.model.eval()
    loaded, tok, _ = tinyllm.load_checkpoint(tmp_path / "o" / "latest.pt")
    idx = torch.tensor([tok.encode("Blessed are the meek: for they shall inherit the earth.")[:32]])
    with torch.no_grad():
        want, _ = live(idx)
        got, _ = loaded(idx)
        fresh, _ = tinyllm.TinyLLM(loaded.config)(idx)
    assert torch.equal(got, want)
    assert not torch.allclose(fresh, want), "the check cannot tell trained weights from fresh ones"


def test_best_checkpoint_has_the_lowest_val_loss(trained):
    out, _ = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in rows[1:]))


def test_cached_and_uncached_greedy_generation_agree(trained):
    out, _ = trained
    model, tok, _ = tinyllm.load_checkpoint(out / "best.pt")
    for prompt in ["And the LORD", "In the", "x"]:
        ids = tok.encode(prompt)
        fast = list(generate_ids(model, ids, 60, temperature=0.0, use_cache=True))
        slow = list(generate_ids(model, ids, 60, temperature=0.0, use_cache=False))
        assert fast == slow and len(fast) > 0


def test_generation_runs_past_the_context_window(trained):
    out, _ = trained
    model, tok, _ = tinyllm.load_checkpoint(out / "best.pt")
    n = 3 * model.config.context_length
    ids = list(generate_ids(model, tok.encode("And"), n, temperature=0.0))
    assert len(ids) == n
    assert ids == list(generate_ids(model, tok.encode("And"), n, temperature=0.0, use_cache=False))


@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal", "rope"])
def test_cache_matches_uncached_past_the_window_and_for_long_prompts(pos_emb):
    cfg = tinyllm.ModelConfig(
        vocab_size=300, context_length=8, d_model=32, n_layers=2, n_heads=2, d_ff=64, pos_emb=pos_emb
    )
    model = tinyllm.TinyLLM(cfg).eval()
    for prompt in ([5, 6, 7], list(range(10, 22))):  # shorter and longer than the context
        fast = list(generate_ids(model, prompt, 30, temperature=0.0))
        slow = list(generate_ids(model, prompt, 30, temperature=0.0, use_cache=False))
        assert fast == slow


def test_generate_cli_prints_only_text_and_is_seeded(trained, run_cli):
    out, _ = trained
    args = [
        "generate",
        "--checkpoint",
        out / "best.pt",
        "--prompt",
        "And God",
        "--max_tokens",
        "30",
        "--temperature",
        "0.9",
        "--top_k",
        "20",
        "--top_p",
        "0.95",
        "--seed",
        "7",
        "--device",
        "cpu",
    ]
    a, b = run_cli(*args), run_cli(*args)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.strip()
    greedy = run_cli(
        "generate", "--checkpoint", out / "best.pt", "--prompt", "And God", "--max_tokens", "30", "--temperature", "0"
    )
    model, tok, _ = tinyllm.load_checkpoint(out / "best.pt")
    want = tok.decode(list(generate_ids(model, tok.encode("And God"), 30, temperature=0.0)))
    assert greedy.stdout == want + "\n"


def test_generation_stops_at_eos(trained):
    out, _ = trained
    model, tok, _ = tinyllm.load_checkpoint(out / "best.pt")
    ids = tok.encode("And")
    free = list(generate_ids(model, ids, 40, temperature=0.0, eos_id=None))
    for stop in set(free[1:6]):  # pretend a token the model does emit is EOS: output ends just before it
        cut = list(generate_ids(model, ids, 40, temperature=0.0, eos_id=stop))
        assert cut == free[: free.index(stop)]


@pytest.mark.parametrize(
    "extra",
    [
        ["--use_learned_pos_emb", "True"],
        ["--use_learned_pos_emb", "False"],
        ["--pos_emb", "rope", "--activation", "swiglu"],
    ],
)
def test_model_flags_reach_the_checkpoint(tmp_path, corpus, run_cli, extra):
    out = tmp_path / "o"
    flags = list(TINY)
    flags[flags.index("--max_iters") + 1] = "4"
    r = run_cli("train", "--data", corpus, "--out_dir", out, *flags, "--sample_tokens", "0", *extra)
    assert r.returncode == 0, r.stderr
    cfg = torch.load(out / "latest.pt", weights_only=True)["model_config"]
    if extra[0] == "--use_learned_pos_emb":
        assert cfg["pos_emb"] == {"True": "learned", "False": "sinusoidal"}[extra[1]]
    else:
        assert (cfg["pos_emb"], cfg["activation"]) == ("rope", "swiglu")


def test_parameter_count_is_printed(trained):
    _, proc = trained
    assert "parameters" in proc.stderr.lower()


def test_written_files_follow_the_umask(trained):
    import os
    import stat

    out, _ = trained
    mask = os.umask(0)
    os.umask(mask)
    for name in ("latest.pt", "best.pt", "metrics.jsonl"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~mask, name


def test_fine_tuning_refuses_to_overwrite_its_source_and_other_shapes(trained, corpus, run_cli, tmp_path):
    out, _ = trained
    flags = list(TINY)
    flags[flags.index("--max_iters") + 1] = "2"
    before = (out / "best.pt").read_bytes()
    r = run_cli("train", "--data", corpus, "--out_dir", out, "--init_from", out / "best.pt", *flags)
    assert r.returncode == 2 and "overwrite" in r.stderr and "Traceback" not in r.stderr
    assert (out / "best.pt").read_bytes() == before
    r = run_cli(
        "train",
        "--data",
        corpus,
        "--out_dir",
        tmp_path / "ft",
        "--init_from",
        out / "best.pt",
        *flags,
        "--d_model",
        "64",
    )
    assert r.returncode == 2 and "d_model: checkpoint 32 vs now 64" in r.stderr, r.stderr[-500:]


def test_a_fresh_run_keeps_its_own_history_not_an_older_runs(corpus, run_cli, tmp_path):
    out = tmp_path / "o"
    flags = list(TINY)
    for k, v in (
        ("--max_iters", "4"),
        ("--checkpoint_interval", "1"),
        ("--eval_interval", "2"),
        ("--sample_tokens", "0"),
    ):
        flags[flags.index(k) + 1] = v
    assert run_cli("train", "--data", corpus, "--out_dir", out, *flags, "--keep_checkpoints", "2").returncode == 0
    flags[flags.index("--max_iters") + 1] = "2"
    assert run_cli("train", "--data", corpus, "--out_dir", out, *flags, "--keep_checkpoints", "2").returncode == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000001.pt", "step_0000002.pt"]
