"""`tinyllm bench train`: training-step throughput of TinyLLM against Hugging Face
`transformers`' GPT2LMHeadModel of the same shape.

Both models get the same dimensions, vocabulary, context and batch, dropout 0, tied
embeddings, tanh-GELU (HF's `gelu_pytorch_tanh`, its fastest form of GPT-2's `gelu_new`),
HF's default SDPA attention, the same AdamW (same parameter groups, fused where the
device has it), the same dtype / autocast and, with --compile, both are compiled. They
run on the same device in the same process, alternating step by step (ours, theirs,
theirs, ours, ...) so that drifting machine load hits both alike. A step is forward,
backward, optimizer step and zero_grad; tokens/s is batch * context / step time, and
the reported rate is the median over the timed steps. Ours runs as `tinyllm train` runs
it: model(x, y, return_logits=False), whose head and loss are one chunked op that never
forms the (B, T, V) logits (model/loss.py); GPT2LMHeadModel forms them, as it always does.
"""

from __future__ import annotations

import csv
import datetime
import os
import statistics
import time
from pathlib import Path

import torch

from ..errors import TinyLLMError
from . import BENCH_SIZES, GOALS
from .profile import profile_report, profile_step
from .provenance import RESULT_COLUMNS, cpu_name, git_commit


def model_config(args):
    from ..model import ModelConfig
    from ..model.config import SHAPE_FIELDS
    from ..train.presets import get_preset

    if args.preset in BENCH_SIZES:
        fields = dict(BENCH_SIZES[args.preset])
    else:
        fields = get_preset(args.preset).model.to_dict()
    for k in SHAPE_FIELDS:
        if getattr(args, k) is not None:
            fields[k] = getattr(args, k)
    # the GPT-2 architecture, which is what GPT2LMHeadModel implements
    fields.update(dropout=0.0, activation="gelu", pos_emb="learned", bias=True, attention=args.attention)
    return ModelConfig(**fields)


def hf_model(cfg, device):
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise TinyLLMError(
            f"bench train compares against Hugging Face transformers, which is not installed "
            f"({e}): pip install transformers"
        ) from None
    hf_logging.set_verbosity_error()
    conf = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.context_length,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.d_ff,
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        use_cache=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    conf._attn_implementation = "sdpa"
    return GPT2LMHeadModel(conf).to(device).train()


def make_step(model, opt, x, y, autocast, hf: bool):
    """One training step: forward, backward, AdamW, zero_grad."""

    def step():
        with autocast():
            if hf:  # HF shifts the labels itself
                loss = model(input_ids=x, labels=x).loss
            else:
                loss = model(x, y, return_logits=False)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed(step, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def commit() -> str:
    return git_commit("tinyllm", "kernels")


def check_args(args) -> None:
    for name in ("batch_size", "steps"):
        if getattr(args, name) <= 0:
            raise TinyLLMError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    for name in ("warmup", "profile"):
        if getattr(args, name) < 0:
            raise TinyLLMError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.threads is not None and args.threads <= 0:
        raise TinyLLMError(f"--threads must be a positive integer, got {args.threads}")
    if args.dtype not in ("auto", "float32", "bfloat16"):
        raise TinyLLMError(f"--dtype must be auto, float32 or bfloat16, got {args.dtype!r}")


def alternate(steps, warmup: int, n: int, device) -> list[list[float]]:
    """Step times of each contestant, run alternating (ours first on even rounds, theirs first on odd)."""
    for _ in range(warmup):
        for s in steps:
            s()
    times = [[], []]
    for i in range(n):
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            times[j].append(timed(steps[j], device))
    return times


def bench_train(args) -> dict:
    from ..model import TinyLLM
    from ..model.config import SHAPE_FIELDS
    from ..train.distributed import resolve_device
    from ..train.mfu import mfu, peak_flops
    from ..train.precision import autocast_setup

    check_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    amp, autocast = autocast_setup(dtype, device)  # as `tinyllm train` runs it
    cfg = model_config(args)
    torch.manual_seed(args.seed)
    ours, theirs = TinyLLM(cfg, device=device).train(), hf_model(cfg, device)
    n_ours, n_theirs = ours.num_params(), sum(p.numel() for p in theirs.parameters())  # tied head counted once
    if n_ours != n_theirs:
        raise TinyLLMError(f"internal: parameter counts differ (ours {n_ours}, transformers {n_theirs})")
    # the same AdamW for both: TinyLLM's configure_optimizer only reads model.parameters()
    opts = [TinyLLM.configure_optimizer(m, 1e-4, 0.1) for m in (ours, theirs)]
    fns = [torch.compile(m) for m in (ours, theirs)] if args.compile else [ours, theirs]
    B, T = args.batch_size, cfg.context_length
    ids = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=torch.Generator().manual_seed(args.seed))
    x, y = ids[:, :-1].contiguous().to(device), ids[:, 1:].contiguous().to(device)
    steps = [make_step(fns[0], opts[0], x, y, autocast, hf=False), make_step(fns[1], opts[1], x, y, autocast, hf=True)]
    times = alternate(steps, args.warmup, args.steps, device)
    tps = [B * T / statistics.median(t) for t in times]
    changed = [k for k in SHAPE_FIELDS if getattr(args, k) is not None]
    peak, fpt = peak_flops(device, amp), ours.flops_per_token()
    return {
        "size": args.preset + (f" with {', '.join(changed)} changed" if changed else ""),
        "cfg": cfg,
        "params": n_ours,
        "batch": B,
        "context": T,
        "dtype": dtype,
        "device": device,
        "device_name": device_name(device),
        "compile": args.compile,
        "steps": args.steps,
        "warmup": args.warmup,
        "backend": ours.backend,
        "times": times,
        "tokens_per_sec": tps,
        "ratio": tps[0] / tps[1],
        "mfu": [mfu(fpt, t, peak) for t in tps],
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "goal": None if changed else GOALS.get((device.type, args.preset)),
        "profiles": [profile_step(s, device, args.profile) for s in steps] if args.profile else None,
    }


def report(r: dict) -> str:
    cfg = r["cfg"]
    lines = [
        f"tinyllm bench train: {r['size']} ({r['params'] / 1e6:.2f}M params: d_model {cfg.d_model}, {cfg.n_layers} "
        f"layers, {cfg.n_heads} heads, d_ff {cfg.d_ff}, vocab {cfg.vocab_size}), batch {r['batch']} x context "
        f"{r['context']}, {r['dtype']}, {r['device_name']}, {'compiled' if r['compile'] else 'eager'}",
        f"{r['steps']} timed steps each (forward, backward, AdamW), alternating, after {r['warmup']} warm-up; "
        f"our attention: {r['backend']}" + (f"; load average {r['load']:.2f}" if r["load"] is not None else ""),
        f"  {'':<14}{'tokens/s':>12}{'step ms':>10}{'min..max tokens/s':>22}" + ("     MFU" if r["mfu"][0] else ""),
    ]
    BT = r["batch"] * r["context"]
    for name, t, tps, m in zip(("tinyllm", "transformers"), r["times"], r["tokens_per_sec"], r["mfu"]):
        spread = f"{BT / max(t):,.0f}..{BT / min(t):,.0f}"
        lines.append(
            f"  {name:<14}{tps:>12,.0f}{1e3 * statistics.median(t):>10.1f}{spread:>22}" + (f"{m:>8.1%}" if m else "")
        )
    verdict = ""
    if r["goal"]:
        verdict = f" (goal {r['goal']}x: {'met' if r['ratio'] >= r['goal'] else 'NOT met'})"
    lines.append(f"  ratio tinyllm / transformers: {r['ratio']:.2f}x{verdict}")
    if r.get("profiles"):
        lines += profile_report(r["profiles"])
    if r["goal"] and r["ratio"] < r["goal"] and r["device"].type == "cpu":
        lines.append(
            "  (on CPU 77% of our step and 74% of transformers' is the same float32 matmuls, already at the cores' peak: "
            "the same arithmetic cannot run 1.3x faster; see benchmarks/README.md)"
        )
    return "\n".join(lines)


def results_path(out: str | Path) -> Path:
    """--out: a .csv file, or a folder (its train.csv)."""
    out = Path(out)
    return out / "train.csv" if out.suffix != ".csv" else out


def write_rows(r: dict, out: str | Path) -> Path:
    """Append one CSV row (benchmarks/results style) to `out` (a .csv file, or a folder: train.csv in it)."""
    import transformers

    path = results_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    what = (
        f"train step {r['size']} B{r['batch']} T{r['context']} {r['dtype']} {'compiled' if r['compile'] else 'eager'}"
    )
    notes = [
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
        f"attention {r['backend']}",
        f"{r['steps']} steps",
    ]
    if r["load"] is not None:
        notes.append(f"load {r['load']:.2f}")
    if r["mfu"][0]:
        notes.append(f"mfu {r['mfu'][0]:.3f} vs {r['mfu'][1]:.3f}")
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow([*RESULT_COLUMNS, "notes"])
        w.writerow(
            [
                what,
                "tinyllm",
                f"{r['tokens_per_sec'][0]:.1f}",
                "transformers-gpt2",
                f"{r['tokens_per_sec'][1]:.1f}",
                "tokens/s",
                f"{r['ratio']:.3f}",
                r["device_name"],
                commit(),
                datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "; ".join(notes),
            ]
        )
    return path
