"""Where a training step's time goes: torch.profiler events grouped by kind of op."""

from __future__ import annotations

import torch

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
    return {
        "total_ms": sum(ms for _, ms in rows),
        "top": rows[:12],
        "categories": sorted(categories.items(), key=lambda kv: -kv[1]),
        "what": "GPU kernel time" if cuda else "CPU self time of aten ops",
    }


def profile_report(profiles) -> list[str]:
    lines = []
    for name, p in zip(("tinyllm", "transformers"), profiles):
        lines.append(f"  profile {name}: {p['total_ms']:.2f} ms per step of {p['what']}")
        lines.append(
            "    by category: " + ", ".join(f"{c} {ms:.2f} ms ({ms / p['total_ms']:.0%})" for c, ms in p["categories"])
        )
        for op, ms in p["top"]:
            lines.append(f"    {ms:8.3f} ms  {ms / p['total_ms']:4.0%}  {op[:110]}")
    return lines
