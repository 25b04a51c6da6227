"""The environment of the tests' torchrun launches: one thread per rank, unbuffered output, and
exit_watch/ on PYTHONPATH, so that a rank whose interpreter starts finalizing with gloo threads
still running says so (exit_watch/sitecustomize.py); check_exit(stderr) fails the test if one did."""

import os
from pathlib import Path

WATCH_DIR = Path(__file__).resolve().parent / "exit_watch"


def torchrun_env() -> dict:
    path = os.pathsep.join(p for p in (str(WATCH_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def check_exit(stderr: str) -> None:
    seen = [line for line in stderr.splitlines() if line.startswith("exit-watch:")]
    assert not seen, f"a rank began interpreter finalization with gloo threads alive: {seen}"
