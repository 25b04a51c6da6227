"""One cell of a sweep, in its own process: `python -m tinyllm.sweep.worker OUT/cells/<name>`.

Reads cell.json (the settings), runs them through the Python API (`resolve_run`, `Trainer(run).run()`,
which resumes from latest.pt when a killed attempt left one), and writes result.json only when the run
finished all its steps, so a cell without result.json is one to (re)run. The sweep sets OMP_NUM_THREADS;
torch's intra-op threads follow it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..errors import TinyLLMError
from ..io import atomic_open


def run_cell(cell_dir: Path) -> dict | None:
    """-> the cell's result (also written to result.json), or None when the run stopped early (a signal)."""
    import torch

    from ..train import Trainer, resolve_run

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    cell = json.loads((cell_dir / "cell.json").read_text())
    t0 = time.perf_counter()
    trainer = Trainer(resolve_run(**cell["settings"]))
    result = trainer.run()
    wall = time.perf_counter() - t0
    if result.stopped_early:
        return None
    rows = result.metrics or read_rows(cell_dir / "metrics.jsonl")
    all_rows = read_rows(cell_dir / "metrics.jsonl")  # every evaluation, earlier attempts' included
    model = trainer.model
    tokens = result.step * cell["tokens_per_step"]
    fpt = float(model.flops_per_token())
    speeds = sorted(r["tokens_per_sec"] for r in all_rows if r.get("tokens_per_sec"))
    out = {
        "cell": cell["name"],
        "varied": cell["varied"],
        "steps": result.step,
        "params": model.num_params(),
        "non_embedding_params": model.num_params(non_embedding=True),
        "tokens": tokens,
        "flops": tokens * fpt,
        "wall_s": wall,
        "tokens_per_sec": speeds[len(speeds) // 2] if speeds else None,  # median over eval intervals
        "final_val_loss": all_rows[-1]["val_loss"],
        "best_val_loss": min(r["val_loss"] for r in all_rows),
        "final_val_bpb": all_rows[-1].get("val_bpb"),
        "best_val_bpb": min((r["val_bpb"] for r in all_rows if r.get("val_bpb") is not None), default=None),
        "resumed": len(rows) < len(all_rows) or not result.metrics,
        "threads": torch.get_num_threads(),
    }
    with atomic_open(cell_dir / "result.json") as f:
        json.dump(out, f, indent=2)
    return out


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    import warnings

    from ..cli import _show_warning

    warnings.showwarning = _show_warning
    try:
        run_cell(Path(argv[0]))
    except TinyLLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
