"""Model FLOPs utilisation: achieved training FLOP/s over the device's dense peak.

MFU = flops_per_token * tokens_per_sec / (peak * devices), with flops_per_token from
TinyLLM.flops_per_token() (6N + attention, forward and backward; PaLM appendix B).
"""

from __future__ import annotations

import torch

# Dense (no sparsity) peak FLOP/s per GPU from vendor datasheets: (bf16/fp16, tf32).
# Order matters: the first name found in torch.cuda.get_device_name() wins.
PEAK_FLOPS: dict[str, tuple[float, float]] = {
    "H100 PCIe": (756e12, 378e12),
    "H100 NVL": (835e12, 418e12),
    "H100": (989e12, 495e12),  # SXM5
    "H200": (989e12, 495e12),
    "GH200": (989e12, 495e12),
    "A100": (312e12, 156e12),
    "L40S": (362e12, 183e12),
    "L4": (121e12, 60e12),
    "A10G": (70e12, 35e12),
    "4090": (165e12, 83e12),
}


def peak_flops(device: torch.device, dtype: torch.dtype = torch.bfloat16) -> float | None:
    """The device's dense peak for matmuls in `dtype` (float32 counts as TF32); None off CUDA or
    for a GPU not in the table."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, tf32) in PEAK_FLOPS.items():
        if key in name:
            return half if dtype in (torch.bfloat16, torch.float16) else tf32
    return None


def mfu(flops_per_token: float, tokens_per_sec: float, peak: float | None, devices: int = 1) -> float | None:
    if not peak or not tokens_per_sec:
        return None
    return flops_per_token * tokens_per_sec / (peak * devices)
