"""`tinyllm sweep`: a 4-cell toy sweep end to end (reports, kill + rerun, --jobs 2), the power-law fit,
and bad input stopped with one line before any cell starts."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinyllm.sweep.cells import combinations
from tinyllm.sweep.fit import fit_power_law
from tinyllm.sweep.spec import build_spec

TOY = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 2,
    "d_ff": 64,
    "context_length": 32,
    "vocab_size": 300,
    "batch_size": 8,
    "warmup_iters": 2,
    "max_lr": 3e-3,
    "eval_iters": 2,
    "device": "cpu",
    "budget_tokens": 6144,  # 24 steps of 8 x 32 tokens
    "evals": 3,  # eval (and checkpoint) every 8 steps
}
AXES = ["--grid", "pos_emb=learned,rope", "--grid", "seed=0,1"]
# what a rerun must reproduce exactly (wall time and tokens/s are measurements, not results)
RESULT_COLUMNS = (
    "cell",
    "pos_emb",
    "seed",
    "params",
    "tokens",
    "flops",
    "final_val_loss",
    "best_val_loss",
    "final_val_bpb",
    "best_val_bpb",
    "seeds",
    "mean_final_val_bpb",
    "std_final_val_bpb",
)


def sweep_args(corpus, out, *extra):
    sets = [a for k, v in {**TOY, "data": corpus}.items() for a in ("--set", f"{k}={v}")]
    return ["sweep", "--out", out, *sets, *AXES, *extra]


def cli(args, threads=1, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tinyllm", *map(str, args)], capture_output=True, text=True, env=env, timeout=600, **kw
    )


def rows(out):
    with open(out / "results.csv") as f:
        return [{k: r[k] for k in RESULT_COLUMNS} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """The sweep run once, uninterrupted, --jobs 1 with 1 thread: -> (out, CompletedProcess)."""
    out = tmp_path_factory.mktemp("sweep") / "ref"
    p = cli(sweep_args(corpus, out))
    assert p.returncode == 0, p.stderr[-3000:]
    return out, p


def test_reports_have_a_row_per_cell(reference):
    out, _ = reference
    got = rows(out)
    assert [(r["pos_emb"], r["seed"]) for r in got] == [
        ("learned", "0"),
        ("learned", "1"),
        ("rope", "0"),
        ("rope", "1"),
    ]
    for r in got:
        assert int(r["tokens"]) == 6144 and float(r["flops"]) > 0 and r["seeds"] == "2"
        assert 0 < float(r["final_val_bpb"]) < float(r["final_val_loss"]) / np.log(2)
        cell = out / "cells" / r["cell"]
        metrics = [json.loads(x) for x in (cell / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [0, 8, 16, 24] and all("val_bpb" in m for m in metrics)
        assert float(r["final_val_bpb"]) == pytest.approx(metrics[-1]["val_bpb"])
        assert (cell / "latest.pt").exists()
    # the group statistics are the cells' own: mean and sample std over the two seeds
    learned = [float(r["final_val_bpb"]) for r in got[:2]]
    assert float(got[0]["mean_final_val_bpb"]) == pytest.approx(np.mean(learned))
    assert float(got[0]["std_final_val_bpb"]) == pytest.approx(np.std(learned, ddof=1))
    md = (out / "results.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| learned") or line.startswith("| rope")]
    assert len(table) == 2 and "(best)" in table[0] and "(best)" not in table[1] and "± " in table[0], md
    assert min(float(r["mean_final_val_bpb"]) for r in got) == pytest.approx(
        float(table[0].split("**")[1].split()[0]), abs=1e-4
    )
    for png in ("curves.png", "bars.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "scaling.png").exists()  # one model size: nothing to fit


def test_jobs_2_gives_the_same_results(reference, corpus, tmp_path):
    """2 cells at once, 1 thread each (2 cores): the same rows, bit for bit, as one at a time on 1 thread."""
    out = tmp_path / "jobs2"
    p = cli(sweep_args(corpus, out, "--jobs", "2"), threads=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 at a time x 1 threads" in p.stderr
    assert rows(out) == rows(reference[0])


def test_killed_then_rerun_runs_only_the_rest(reference, corpus, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyllm", *map(str, sweep_args(corpus, out))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while len(list(out.glob("cells/*/result.json"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the cell it was running
    proc.wait()
    finished = {f.parent.name: f.read_bytes() for f in out.glob("cells/*/result.json")}
    assert 2 <= len(finished) < 4 and not (out / "results.csv").exists()
    p = cli(sweep_args(corpus, out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"{len(finished)} of 4 cells already finished, kept" in p.stderr
    assert f"running {4 - len(finished)}," in p.stderr
    for name, data in finished.items():  # kept as they were
        assert (out / "cells" / name / "result.json").read_bytes() == data
    assert rows(out) == rows(reference[0])


def test_a_half_finished_cell_resumes_from_its_checkpoint(reference, corpus, tmp_path):
    """A cell cut after its step-16 checkpoint: the rerun continues from step 16, not from 0, and ends
    where the uninterrupted cell ended."""
    import shutil

    out = tmp_path / "half"
    shutil.copytree(reference[0] / "cells", out / "cells")
    cell = out / "cells" / "003-pos_emb=rope-seed=1"
    (cell / "result.json").unlink()
    shutil.copy(cell / "checkpoints" / "step_0000016.pt", cell / "latest.pt")
    p = cli(sweep_args(corpus, out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "3 of 4 cells already finished" in p.stderr
    assert f"resuming from {cell / 'latest.pt'} at step 16" in (cell / "train.log").read_text()
    metrics = [json.loads(x)["step"] for x in (cell / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [0, 8, 16, 24]
    assert json.loads((cell / "result.json").read_text())["resumed"] is True
    assert rows(out) == rows(reference[0])


def test_power_law_fit_recovers_known_constants():
    rng = np.random.default_rng(7)
    for e_true, a_true, alpha in ((1.69, 406.4, 0.34), (2.5, 30.0, 0.2), (0.8, 5e3, 0.5)):
        N = np.geomspace(1e4, 1e8, 6)
        L = (e_true + a_true / N**alpha) * (1 + rng.normal(0, 1e-3, N.size))  # 0.1% noise
        fit = fit_power_law(N, L)
        for got, true in ((fit.E, e_true), (fit.A, a_true), (fit.alpha, alpha)):
            assert abs(got / true - 1) < 0.05, (fit, e_true, a_true, alpha)
        assert 0 < fit.alpha_err < 0.05 * alpha and np.isfinite(fit.E_err) and np.isfinite(fit.A_err)


def test_spec_files_cross_and_zip(tmp_path):
    (tmp_path / "s.toml").write_text(
        'budget_tokens = 1000\n[base]\npreset = "demo"\n[grid]\nseed = [0, 1]\n'
        "[zip]\nd_model = [32, 64, 96]\nn_heads = [2, 4, 6]\n"
    )
    spec = build_spec(tmp_path / "s.toml", sets=["max_lr=1e-3"], grids=["activation=gelu,relu"])
    cells = combinations(spec)
    assert len(cells) == 2 * 2 * 3 and spec.base == {"preset": "demo", "max_lr": 1e-3}
    assert cells[0] == {"seed": 0, "activation": "gelu", "d_model": 32, "n_heads": 2}
    assert cells[-1] == {"seed": 1, "activation": "relu", "d_model": 96, "n_heads": 6}
    (tmp_path / "s.json").write_text(json.dumps({"grid": {"pos_emb": ["rope"]}, "budget_flops": 1e12}))
    assert build_spec(tmp_path / "s.json").budget_flops == 1e12


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--grid", "colour=red,blue"], "--grid colour: unknown axis or setting"),
        (
            ["--grid", "n_heads=2,3"],
            "cell 1 (pos_emb=learned, seed=0, n_heads=3): model config: d_model (32) must be divisible by n_heads (3)",
        ),
        (["--set", "budget_tokens=100"], "budget_tokens 100 is less than one step (256 tokens"),
        (["--set", "data=missing.txt"], "missing.txt: no such file or directory"),
        (["--set", "max_lr=fast"], "max_lr='fast' is not a valid float"),
        (["--grid", "d_model=32", "--zip", "d_model=64"], "d_model is both a [grid] and a [zip] axis"),
        (["SPEC", "bad.toml"], "bad.toml: not a TOML sweep spec"),
        (["SPEC", "bad.json"], "bad.json: not a JSON sweep spec"),
    ],
)
def test_bad_input_is_one_line_before_any_cell_starts(corpus, tmp_path, extra, message):
    (tmp_path / "bad.toml").write_text("[base\npreset = demo\n")
    (tmp_path / "bad.json").write_text('{"grid": [1, 2')
    out = tmp_path / "out"
    spec = []
    if extra[0] == "SPEC":
        spec, extra = [tmp_path / extra[1]], []
    p = cli([*sweep_args(corpus, out, *extra)[:1], *spec, *sweep_args(corpus, out, *extra)[1:]], cwd=tmp_path)
    assert p.returncode == 2, p.stderr[-2000:]
    assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr, p.stderr
    assert not (out / "cells").exists()


def test_a_cell_that_fails_stops_the_sweep_with_its_name(corpus, tmp_path):
    """A corpus too short for the context passes planning (the file exists) but fails in its cell: the
    sweep ends (not hangs) with one line naming the cell, after the cells already running finished."""
    (tmp_path / "short.txt").write_text("In the beginning.\n")
    args = [a for a in sweep_args(corpus, tmp_path / "out") if a not in AXES]
    p = cli([*args, "--grid", f"data={corpus},{tmp_path / 'short.txt'}", "--grid", "seed=0,1"])
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 cell(s) failed; first: cell 2 [data=short, seed=0]") and "too few" in last, last
    assert (tmp_path / "out" / "cells" / "001-data=kjv-seed=1" / "result.json").exists()
    assert not (tmp_path / "out" / "cells" / "003-data=short-seed=1" / "train.log").exists()  # never started
