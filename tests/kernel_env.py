"""Shared set-up of the kernel tests: the Triton interpreter, and a re-run when it can't be had.

TRITON_INTERPRET=1 must be in the environment before triton is first imported. A test module
that imports this first gets it set; if triton was already imported without it (another module
imported torch._dynamo first), the interpreter cannot be switched on in this process, so the
kernel tests skip here and `rerun_in_subprocess` runs the module again with the variable set:
the kernels are never silently left untested.
"""

import os
import subprocess
import sys
from pathlib import Path

if "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")
# An exported TINYLLM_KERNELS=reference would turn every kernel test into the reference checked
# against itself; the tests that need it set it themselves (monkeypatch).
os.environ.pop("TINYLLM_KERNELS", None)

import pytest

import tinyllm.kernels as K  # noqa: F401 (setup.py installs kernels/ as tinyllm.kernels)
from tinyllm.kernels import dispatch

ROOT = Path(__file__).resolve().parents[1]
IS_CHILD = os.environ.get("TINYLLM_KERNEL_TESTS_CHILD") == "1"
RERUN = dispatch.HAS_TRITON and not dispatch.INTERPRETED and not IS_CHILD
needs_interpreter = pytest.mark.skipif(
    not dispatch.HAS_TRITON or RERUN,
    reason=f"triton not importable ({dispatch.TRITON_IMPORT_ERROR!r}; test_installed_triton_imports fails "
    "if it is installed)"
    if not dispatch.HAS_TRITON
    else "triton was imported before TRITON_INTERPRET=1; covered by test_rerun_in_subprocess",
)
needs_rerun = pytest.mark.skipif(not RERUN, reason="the interpreter is active in this process")


def rerun_in_subprocess(test_file: str) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "TINYLLM_KERNEL_TESTS_CHILD": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
