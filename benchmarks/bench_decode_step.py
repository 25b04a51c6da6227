"""The decode step (TinyLLM.forward_rows, what `tinyllm serve` runs each step and `generate_ids` each
token) at 1, 4, 16 and 64 rows on one thread, its three ways side by side in one process, in turn:

- torch: the torch path with each linear through oneDNN over packed weights (model/packed_linear.py),
  what ran before the C++ step and still runs where it cannot;
- C++ step, AVX2 kernels (panels of 8 floats);
- C++ step, AVX-512 kernels (panels of 16), where the CPU has AVX-512F.

    OMP_NUM_THREADS=1 python benchmarks/bench_decode_step.py [--preset demo tiny] [--reps 30]

Random weights of the preset's shape, rows at position 40 of their caches; milliseconds a step
(median of --reps after 3 warm-up steps), and each path's speed against the torch path. Rows go to
results/decode_step.csv.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import statistics
import time
from pathlib import Path

import torch

import tinyllm.model.decode_step as DS
from tinyllm.bench.provenance import git_commit, machine
from tinyllm.model import ModelConfig, TinyLLM
from tinyllm.train.presets import get_preset

RESULTS = Path(__file__).parent / "results" / "decode_step.csv"
ROWS = (1, 4, 16, 64)


def step_ms(model: TinyLLM, rows: int, reps: int) -> float:
    caches = [model.new_cache(1) for _ in range(rows)]
    for c in caches:
        c.length = 40
    times = []
    with torch.no_grad():
        for k in range(reps + 3):
            for c in caches:
                c.length = 40
            t = time.perf_counter()
            model.forward_rows([7] * rows, caches)
            if k >= 3:
                times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", nargs="+", default=["demo", "tiny"])
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    paths = {"torch (oneDNN, packed)": None, "C++ step, AVX2": 8}
    if DS._SUPPORTED and DS._ops.decode_step_avx512():
        paths["C++ step, AVX-512"] = 16
    stamp = dict(date=datetime.date.today().isoformat(), commit=git_commit(), machine=machine())
    out = []
    for preset in args.preset:
        torch.manual_seed(0)
        model = TinyLLM(ModelConfig(**{**get_preset(preset).model.to_dict(), "dropout": 0.0})).eval()
        model.pack_for_inference()
        for rows in ROWS:
            got = {}
            for _ in range(2):  # the paths in turn, twice: the best of each
                for name, width in paths.items():
                    if width is None:
                        DS._steps.pop(model, None)  # no C++ step made before, and none made now:
                        supported, DS._SUPPORTED = DS._SUPPORTED, False  # the torch path alone
                        try:
                            ms = step_ms(model, rows, args.reps)
                        finally:
                            DS._SUPPORTED = supported
                    else:
                        DS.WIDTH = width
                        ms = step_ms(model, rows, args.reps)
                    got[name] = min(got.get(name, float("inf")), ms)
            base = got["torch (oneDNN, packed)"]
            for name, ms in got.items():
                print(f"{preset:5s} {rows:3d} rows  {name:24s} {ms:8.3f} ms  {base / ms:5.2f}x torch")
                out.append({**stamp, "preset": preset, "rows": rows, "path": name, "ms": f"{ms:.4f}",
                            "vs_torch": f"{base / ms:.3f}"})  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    new = not RESULTS.exists()
    with open(RESULTS, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        if new:
            w.writeheader()
        w.writerows(out)
    print(f"appended {len(out)} rows to {RESULTS}")


if __name__ == "__main__":
    main()
