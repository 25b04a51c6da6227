#!/usr/bin/env python
"""Training throughput on a quiet and on a shared machine, with torch's default OpenMP settings and
with the CLI's (OMP_WAIT_POLICY=PASSIVE, OMP_NUM_THREADS = the cores this process may use).

    python benchmarks/bench_contention.py [--steps 40] [--out benchmarks/results]

Each case is a real `tinyllm train --preset demo` run of --steps steps (no evaluation, no
checkpoint until the end) in a subprocess; the figure is the training tokens/s the trainer logs at
the end. "Contended" runs one busy process (a pure-Python spin loop, as another job on the machine
would be) beside it. Cases alternate in rounds so drifting load hits them alike; the table reports
the median of the rounds and every ratio against torch's defaults on the same machine state.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyllm.bench.provenance import git_commit, machine  # noqa: E402

SETTINGS = {
    "torch defaults": {"TINYLLM_THREAD_DEFAULTS": "0"},
    "one thread": {"TINYLLM_THREAD_DEFAULTS": "0", "OMP_NUM_THREADS": "1"},
    "short spin (GOMP_SPINCOUNT=10000)": {"TINYLLM_THREAD_DEFAULTS": "0", "GOMP_SPINCOUNT": "10000"},
    "tinyllm defaults (PASSIVE)": {},
}


def train_tps(env_extra: dict, steps: int, corpus: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(env_extra)
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tinyllm",
                "train",
                "--preset",
                "demo",
                "--data",
                str(corpus),
                "--max_iters",
                str(steps),
                "--eval_interval",
                str(steps),
                "--eval_iters",
                "1",
                "--checkpoint_interval",
                str(steps),
                "--sample_tokens",
                "0",
                "--progress",
                "false",
                "--out_dir",
                d,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        rows = [json.loads(x) for x in (Path(d) / "metrics.jsonl").read_text().splitlines()]
        return rows[-1]["tokens_per_sec"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None, help="append rows to OUT/contention.csv")
    args = ap.parse_args()
    from tinyllm.data.corpus import bible_verses

    corpus = Path(tempfile.mkdtemp()) / "kjv.txt"
    corpus.write_text("\n\n".join(bible_verses()[:8000]) + "\n")
    results = {(load, name): [] for load in ("quiet", "contended") for name in SETTINGS}
    for _ in range(args.rounds):
        for load in ("quiet", "contended"):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "contended" else None
            try:
                for name, env in SETTINGS.items():
                    results[(load, name)].append(train_tps(env, args.steps, corpus))
            finally:
                if hog:
                    hog.kill()
                    hog.wait()
    load_avg = os.getloadavg()[0]
    print(
        f"tinyllm train --preset demo, {args.steps} steps, median of {args.rounds} rounds; {machine()}; "
        f"load average at the end {load_avg:.2f}"
    )
    print(f"{'':<30}{'quiet tok/s':>14}{'x defaults':>12}{'contended tok/s':>18}{'x defaults':>12}")
    med = {k: statistics.median(v) for k, v in results.items()}
    for name in SETTINGS:
        q, c = med[("quiet", name)], med[("contended", name)]
        print(
            f"{name:<30}{q:>14,.0f}{q / med[('quiet', 'torch defaults')]:>11.2f}x"
            f"{c:>18,.0f}{c / med[('contended', 'torch defaults')]:>11.2f}x"
        )
    if args.out:
        path = Path(args.out) / "contention.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(
                    [
                        "what",
                        "setting",
                        "load",
                        "tokens_per_sec",
                        "ratio_vs_torch_defaults",
                        "machine",
                        "commit",
                        "date",
                        "notes",
                    ]
                )
            date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for (load, name), v in med.items():
                w.writerow(
                    [
                        f"train demo {args.steps} steps",
                        name,
                        load,
                        f"{v:.1f}",
                        f"{v / med[(load, 'torch defaults')]:.3f}",
                        machine(),
                        git_commit("tinyllm"),
                        date,
                        f"median of {args.rounds}; load avg {load_avg:.2f}",
                    ]
                )
        print(f"appended rows to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
