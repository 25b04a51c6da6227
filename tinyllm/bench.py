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

import argparse
import csv
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from .errors import TinyLLMError
from .provenance import cpu_name, git_commit

# Shapes only the benchmark knows: GPT-2 small (124M), the size of the GPU goal.
BENCH_SIZES = {"gpt2": dict(vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12, d_ff=3072)}
# What the issue asks of us, by (device type, size): ratio ours / transformers.
GOALS = {("cpu", "tiny"): 1.3, ("cuda", "gpt2"): 1.5}


def model_config(args):
    from .model import ModelConfig
    from .model.config import PRESETS, SHAPE_FIELDS

    if args.preset in BENCH_SIZES:
        fields = dict(BENCH_SIZES[args.preset])
    else:
        fields = {k: v for k, v in PRESETS[args.preset].items() if k not in ("params", "train")}
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
        raise TinyLLMError(f"bench train compares against Hugging Face transformers, which is not installed "
                           f"({e}): pip install transformers") from None
    hf_logging.set_verbosity_error()
    conf = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.d_model,
                      n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_ff,
                      activation_function="gelu_pytorch_tanh", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      tie_word_embeddings=True, use_cache=False, bos_token_id=0, eos_token_id=0)
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


def bench_train(args) -> dict:
    from .model import TinyLLM
    from .model.config import SHAPE_FIELDS
    from .train.distributed import resolve_device
    from .train.mfu import mfu, peak_flops
    from .train.precision import autocast_setup

    for name in ("batch_size", "steps"):
        if getattr(args, name) <= 0:
            raise TinyLLMError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    for name in ("warmup", "profile"):
        if getattr(args, name) < 0:
            raise TinyLLMError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.threads is not None:
        if args.threads <= 0:
            raise TinyLLMError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    if dtype not in ("float32", "bfloat16"):
        raise TinyLLMError(f"--dtype must be auto, float32 or bfloat16, got {args.dtype!r}")
    amp, autocast = autocast_setup(dtype, device)  # as `tinyllm train` runs it
    cfg = model_config(args)

    torch.manual_seed(args.seed)
    ours = TinyLLM(cfg, device=device).train()
    theirs = hf_model(cfg, device)
    n_ours = ours.num_params()
    n_theirs = sum(p.numel() for p in theirs.parameters())  # tied head counted once, as ours
    if n_ours != n_theirs:
        raise TinyLLMError(f"internal: parameter counts differ (ours {n_ours}, transformers {n_theirs})")
    # the same AdamW for both: TinyLLM's configure_optimizer only reads model.parameters()
    opts = [TinyLLM.configure_optimizer(m, 1e-4, 0.1) for m in (ours, theirs)]
    fns = [torch.compile(m) for m in (ours, theirs)] if args.compile else [ours, theirs]
    g = torch.Generator().manual_seed(args.seed)
    B, T = args.batch_size, cfg.context_length
    ids = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=g).to(device)
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    steps = [make_step(fns[0], opts[0], x, y, autocast, hf=False), make_step(fns[1], opts[1], x, y, autocast, hf=True)]

    for _ in range(args.warmup):
        for s in steps:
            s()
    times = [[], []]
    for i in range(args.steps):
        order = (0, 1) if i % 2 == 0 else (1, 0)  # ours first on even rounds, theirs first on odd
        for j in order:
            times[j].append(timed(steps[j], device))

    tps = [B * T / statistics.median(t) for t in times]
    profiles = [profile_step(s, device, args.profile) for s in steps] if args.profile else None
    changed = [k for k in SHAPE_FIELDS if getattr(args, k) is not None]
    size = args.preset + (f" with {', '.join(changed)} changed" if changed else "")
    peak = peak_flops(device, amp)
    fpt = ours.flops_per_token()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "size": size, "cfg": cfg, "params": n_ours, "batch": B, "context": T, "dtype": dtype,
        "device": device, "device_name": device_name(device), "compile": args.compile, "steps": args.steps,
        "warmup": args.warmup, "backend": ours.backend, "times": times, "tokens_per_sec": tps,
        "ratio": tps[0] / tps[1], "mfu": [mfu(fpt, t, peak) for t in tps], "load": load,
        "goal": None if changed else GOALS.get((device.type, args.preset)),
        "profiles": profiles,
    }


# Kernel / op name fragments -> what a share of the step is spent on (first match wins).
# Activations come before matmuls: inductor names a pointwise kernel after the ops it fused,
# e.g. triton_poi_fused_addmm_gelu_* is the bias + GELU after a matmul, not a matmul.
_CATEGORIES = (
    ("attention", ("flash", "attn", "attention", "fmha")),
    ("gelu/activation", ("gelu", "silu", "swiglu")),
    ("matmul", ("gemm", "matmul", "addmm", "aten::mm", "aten::bmm", "nvjet", "cutlass", "xmma", "sm90_", "sm80_")),
    ("layer norm", ("layer_norm", "layernorm")),
    ("loss/softmax", ("cross_entropy", "crossentropy", "log_softmax", "nll", "softmax", "linear_cross_entropy")),
    ("optimizer", ("adam", "foreach", "multi_tensor")),
    ("embedding", ("embedding", "index_select", "gather", "scatter")),
)


def _category(name: str) -> str:
    low = name.lower()
    if low.startswith("triton_tem"):  # inductor's matmul templates, whatever epilogue they fused
        return "matmul"
    return next((cat for cat, keys in _CATEGORIES if any(k in low for k in keys)), "other")


def _step_rows(events, cuda: bool, n: int) -> list[tuple[str, float]]:
    """(name, ms per step) from profiler key_averages over n steps."""
    from torch.autograd import DeviceType

    rows = []
    for e in events:
        # On CUDA count the kernel (and memcpy) events themselves: an aten op's self device
        # time is its kernels' time again, and a record_function range (optimizer step,
        # compiled region) is mirrored on the GPU as a user annotation spanning its kernels.
        # On CPU self time does not double-count nesting.
        if cuda and (e.device_type != DeviceType.CUDA or getattr(e, "is_user_annotation", False)):
            continue
        us = e.self_device_time_total if cuda else e.self_cpu_time_total
        if us > 0:
            rows.append((e.key, us / 1e3 / n))
    return rows


def profile_step(step, device, n: int) -> dict:
    """Run `step` n times under torch.profiler: where one step's time goes.

    On CUDA it counts GPU kernel time (self device time of each kernel); on CPU, each
    aten op's self CPU time. Returns {"total_ms", "top": [(name, ms per step)], "categories"}.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(n):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    rows = _step_rows(prof.key_averages(), cuda, n)
    rows.sort(key=lambda r: -r[1])
    categories: dict[str, float] = {}
    for name, ms in rows:
        categories[_category(name)] = categories.get(_category(name), 0.0) + ms
    return {"total_ms": sum(ms for _, ms in rows), "top": rows[:12],
            "categories": sorted(categories.items(), key=lambda kv: -kv[1]),
            "what": "GPU kernel time" if cuda else "CPU self time of aten ops"}


def profile_report(profiles) -> list[str]:
    lines = []
    for name, p in zip(("tinyllm", "transformers"), profiles):
        lines.append(f"  profile {name}: {p['total_ms']:.2f} ms per step of {p['what']}")
        lines.append("    by category: " + ", ".join(f"{c} {ms:.2f} ms ({ms / p['total_ms']:.0%})"
                                                    for c, ms in p["categories"]))
        for op, ms in p["top"]:
            lines.append(f"    {ms:8.3f} ms  {ms / p['total_ms']:4.0%}  {op[:110]}")
    return lines


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
        lines.append(f"  {name:<14}{tps:>12,.0f}{1e3 * statistics.median(t):>10.1f}{spread:>22}"
                     + (f"{m:>8.1%}" if m else ""))
    verdict = ""
    if r["goal"]:
        verdict = f" (goal {r['goal']}x: {'met' if r['ratio'] >= r['goal'] else 'NOT met'})"
    lines.append(f"  ratio tinyllm / transformers: {r['ratio']:.2f}x{verdict}")
    if r.get("profiles"):
        lines += profile_report(r["profiles"])
    if r["goal"] and r["ratio"] < r["goal"] and r["device"].type == "cpu":
        lines.append("  (on CPU about 80% of both steps is the same float32 matmuls, already at the cores' peak: "
                     "the same arithmetic cannot run 1.3x faster; see benchmarks/README.md)")
    return "\n".join(lines)


def write_rows(r: dict, out: str | Path) -> Path:
    """Append one CSV row (benchmarks/results style) to `out` (a .csv file, or a folder: train.csv in it)."""
    import transformers

    out = Path(out)
    path = out / "train.csv" if out.suffix != ".csv" else out
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    what = (f"train step {r['size']} B{r['batch']} T{r['context']} {r['dtype']} "
            f"{'compiled' if r['compile'] else 'eager'}")
    notes = [f"torch {torch.__version__}", f"transformers {transformers.__version__}", f"attention {r['backend']}",
             f"{r['steps']} steps"]
    if r["load"] is not None:
        notes.append(f"load {r['load']:.2f}")
    if r["mfu"][0]:
        notes.append(f"mfu {r['mfu'][0]:.3f} vs {r['mfu'][1]:.3f}")
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["what", "ours", "ours_value", "against", "their_value", "unit", "ratio", "machine", "commit",
                        "date", "notes"])
        w.writerow([what, "tinyllm", f"{r['tokens_per_sec'][0]:.1f}", "transformers-gpt2",
                    f"{r['tokens_per_sec'][1]:.1f}", "tokens/s", f"{r['ratio']:.3f}", r["device_name"], commit(),
                    datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "; ".join(notes)])
    return path


def cmd_bench(args) -> int:
    r = bench_train(args)
    print(report(r))
    if args.out:
        print(f"appended a row to {write_rows(r, args.out)}", file=sys.stderr)
    return 0


def add_bench_parser(sub) -> None:
    from .model.config import PRESETS, SHAPE_FIELDS

    b = sub.add_parser("bench", help="benchmarks (train: training steps against Hugging Face transformers)")
    bsub = b.add_subparsers(dest="bench_cmd", required=True, metavar="WHAT")
    t = bsub.add_parser("train", help="tokens/s of training steps, TinyLLM vs transformers' GPT2LMHeadModel",
                        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--preset", choices=[*PRESETS, *BENCH_SIZES], default="tiny",
                   help="model size (default: tiny; gpt2 = GPT-2 small, 124M, context 1024)")
    t.add_argument("--batch_size", type=int, default=8, help="sequences per step (default: 8)")
    for name in SHAPE_FIELDS:
        t.add_argument(f"--{name}", type=int, default=None, help=f"override the size's {name}")
    t.add_argument("--steps", type=int, default=10, help="timed steps per model (default: 10)")
    t.add_argument("--warmup", type=int, default=3, help="untimed steps per model first (default: 3)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    t.add_argument("--dtype", default="auto",
                   help="auto (bfloat16 autocast on CUDA, float32 on CPU), float32 or bfloat16")
    t.add_argument("--compile", action="store_true", help="torch.compile both models")
    t.add_argument("--attention", default="auto", choices=["auto", "sdpa", "triton", "reference"],
                   help="our attention backend (default: auto = sdpa)")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    t.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N more steps of each model and print where the time goes "
                        "(GPU kernels on CUDA, aten ops on CPU), by category and top ops (default: 0, off)")
    t.add_argument("--seed", type=int, default=0, help="seed for weights and the batch")
    t.add_argument("--out", default=None,
                   help="append a CSV row to this file, or to train.csv in this folder (e.g. benchmarks/results)")
    t.set_defaults(func=cmd_bench)
