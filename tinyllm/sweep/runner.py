"""Running a sweep: plan and check every cell, skip the finished ones, run the rest N at a time as
subprocesses (sweep/worker.py), then write the reports (sweep/report.py).

    OUT/sweep.json              the spec and the planned cells
    OUT/cells/<name>/           one `tinyllm train` out_dir per cell: cell.json, metrics.jsonl, latest.pt,
                                best.pt, train.log (the run's stderr), result.json once it finished
    OUT/results.csv, results.md, curves.png, bars.png, scaling.png (size sweeps), fit.json

Resumable: a rerun keeps every cell with a result.json and reruns the others with resume='auto', so
a cell killed half-way continues from its last checkpoint (bit-exactly, as `tinyllm train --resume
auto` does). --jobs N runs N cells at once with cores // N threads each (N x threads <= cores). Under
torchrun (WORLD_SIZE > 1) rank r runs cells r, r + W, ... and rank 0 writes the reports once every
cell is done; the cells themselves are single-process runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .. import usable_cores
from ..errors import TinyLLMError, warn_once
from ..io import atomic_open
from .cells import Cell, plan_cells
from .spec import SweepSpec

DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def available_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by OMP_NUM_THREADS when that is set
    (on a shared machine it says how many cores are really ours)."""
    cores = usable_cores()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(omp)) if omp.isdigit() and int(omp) > 0 else cores


def thread_split(jobs: int, cores: int) -> tuple[int, int]:
    """-> (jobs, threads per job) with jobs x threads <= cores."""
    if jobs <= 0:
        raise TinyLLMError(f"--jobs must be a positive integer, got {jobs}")
    if jobs > cores:
        warn_once(f"--jobs {jobs} is more than the {cores} cores available; running {cores} at once")
        jobs = cores
    return jobs, cores // jobs


def run_sweep(spec: SweepSpec, out: str | Path, jobs: int = 1, log=log_stderr) -> list[dict] | None:
    """Run the sweep; -> the result rows (rank 0), None on other torchrun ranks."""
    out = Path(out)
    cells = plan_cells(spec, out)  # every cell checked before any starts
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    jobs, threads = thread_split(jobs, max(1, available_cores() // local_world))
    claim_cells(cells, out)
    if rank == 0:
        with atomic_open(out / "sweep.json") as f:
            json.dump({"spec": vars(spec), "cells": [c.to_dict() for c in cells]}, f, indent=2, default=str)
    mine = cells[rank::world]
    done = [c for c in mine if (out / "cells" / c.name / "result.json").exists()]
    if done:
        log(f"sweep: {len(done)} of {len(mine)} cells already finished, kept: {', '.join(c.name for c in done)}")
    todo = [c for c in mine if c not in done]
    log(f"sweep: {len(cells)} cells; running {len(todo)}, {jobs} at a time x {threads} threads, in {out}")
    t0 = time.perf_counter()
    run_pool(todo, out, jobs, threads, log)
    if rank != 0:
        return None
    wait_for_cells(cells, out, log)
    from .report import write_reports

    rows = write_reports(spec, cells, out, log)
    log(f"sweep: done in {time.perf_counter() - t0:.0f}s; {out / 'results.md'}")
    return rows


def claim_cells(cells: list[Cell], out: Path) -> None:
    """Write each cell's cell.json; a folder left by another spec's cell of the same name is an error
    (checked for every cell before any is written)."""
    for c in cells:
        path = out / "cells" / c.name / "cell.json"
        if path.exists():
            old = json.loads(path.read_text()).get("settings", {})
            diff = sorted(k for k in set(old) | set(c.settings) if k != "out_dir" and old.get(k) != c.settings.get(k))
            if diff:
                raise TinyLLMError(
                    f"{path.parent}: was run with other settings ({', '.join(diff)} differ); "
                    "use another --out or delete that folder"
                )
    for c in cells:
        with atomic_open(out / "cells" / c.name / "cell.json") as f:
            json.dump(c.to_dict(), f, indent=2)


def cell_env(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV and not k.startswith("TORCHELASTIC_")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return env


def run_pool(cells: list[Cell], out: Path, jobs: int, threads: int, log) -> None:
    """Run the cells, `jobs` at a time; the first failure stops new starts and ends in a TinyLLMError."""
    pending, running, failed = list(cells), {}, []
    env = cell_env(threads)
    try:
        while running or (pending and not failed):  # after a failure: let the running cells end
            while pending and len(running) < jobs and not failed:
                c = pending.pop(0)
                d = out / "cells" / c.name
                (d / "failed.txt").unlink(missing_ok=True)
                logf = open(d / "train.log", "a")  # noqa: SIM115 - closed when the process ends
                cmd = [sys.executable, "-m", "tinyllm.sweep.worker", str(d)]
                running[subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)] = (c, logf)
                log(f"cell {c.index} [{c.label}]: started")
            for p in [p for p in running if p.poll() is not None]:
                c, logf = running.pop(p)
                logf.close()
                d = out / "cells" / c.name
                if p.returncode == 0 and (d / "result.json").exists():
                    r = json.loads((d / "result.json").read_text())
                    log(
                        f"cell {c.index} [{c.label}]: val bpb {r['final_val_bpb']:.4f}, val loss "
                        f"{r['final_val_loss']:.4f}, {r['wall_s']:.0f}s"
                    )
                else:
                    why = last_error(d / "train.log") or f"exit code {p.returncode}"
                    (d / "failed.txt").write_text(why + "\n")
                    failed.append(f"cell {c.index} [{c.label}]: {why} (log: {d / 'train.log'})")
            time.sleep(0.05)
    finally:
        for p in running:  # interrupted: each cell saves a checkpoint on SIGTERM and exits
            p.terminate()
        for p, (_, logf) in running.items():
            p.wait()
            logf.close()
    if failed:
        raise TinyLLMError(f"{len(failed)} cell(s) failed; first: {failed[0]}")


def last_error(log_path: Path) -> str | None:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [None])[-1]


def wait_for_cells(cells: list[Cell], out: Path, log, poll_s: float = 1.0) -> None:
    """Rank 0 under torchrun: until every cell has a result.json (other ranks' included)."""
    waiting = False
    while True:
        missing = [c for c in cells if not (out / "cells" / c.name / "result.json").exists()]
        failed = [c for c in missing if (out / "cells" / c.name / "failed.txt").exists()]
        if failed:
            why = (out / "cells" / failed[0].name / "failed.txt").read_text().strip()
            raise TinyLLMError(f"cell {failed[0].index} [{failed[0].label}] failed: {why}")
        if not missing:
            return
        if not waiting:
            log(f"sweep: waiting for {len(missing)} cell(s) run by other ranks")
            waiting = True
        time.sleep(poll_s)
