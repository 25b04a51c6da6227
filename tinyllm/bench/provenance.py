"""Where a benchmark number came from: the machine and the commit, for every CSV row."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# The columns of benchmarks/results/tokenizer.csv and train.csv (train.csv adds "notes"); each is
# described in benchmarks/README.md, "Results files".
RESULT_COLUMNS = "what ours ours_value against their_value unit ratio machine commit date".split()

ROOT = Path(__file__).resolve().parents[2]  # the repository (tinyllm/bench/provenance.py)


def cpu_name() -> str:
    """'AMD EPYC ...' from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}"


def git_commit(*paths: str) -> str:
    """Short HEAD sha, '+dirty' when tracked files under `paths` (default: all) have changes.

    $TINYLLM_COMMIT, when set, wins: a copy of the tree whose .git is not the source's (a
    benchmark run on a lent GPU machine) must record the commit it was copied from.
    """
    named = os.environ.get("TINYLLM_COMMIT", "").strip()
    if named:
        return named
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *paths],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
