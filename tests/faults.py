"""Fault injection for tests of every writer and reader: a full disk, a read-only folder, an
unprivileged process, bad output paths. Other test files import these helpers.

- `full_disk(size)`: a tmpfs of `size` bytes mounted for the test (needs root and mount(2);
  elsewhere the test is skipped, saying why).
- `unprivileged(cmd)`: the command with every capability dropped (setpriv), so even root gets
  EACCES from a read-only folder, as an ordinary user would. Skipped where setpriv is missing.
- `read_only_dir(parent)`: a folder no unprivileged process may write in.
- `bad_output_paths(tmp)`: (label, path, what the error must say) for the places a writer can be
  pointed at: an existing file, a directory, under a non-directory parent, under /proc.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


@contextlib.contextmanager
def full_disk(size: int):
    """A fresh tmpfs of `size` bytes: writing past it fails with ENOSPC (No space left on device)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a small tmpfs needs root and mount(8)")
    where = Path(tempfile.mkdtemp(prefix="tinyllm-full-"))
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if r.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        with contextlib.suppress(OSError):
            where.rmdir()


def unprivileged(cmd: list[str]) -> list[str]:
    """`cmd` run without capabilities (no CAP_DAC_OVERRIDE: folder permissions apply, even to root)."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop privileges")
    if os.geteuid() != 0:
        return cmd  # already an ordinary user
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *cmd]


def read_only_dir(parent: Path) -> Path:
    d = parent / "read-only"
    d.mkdir()
    d.chmod(0o555)
    return d


def bad_output_paths(tmp: Path, want_dir: bool) -> list[tuple[str, Path, str]]:
    """(label, path, a phrase the one-line error must contain) for each kind of bad output path."""
    a_file = tmp / "a-file"
    a_file.write_text("not a folder\n")
    a_dir = tmp / "a-dir"
    a_dir.mkdir(exist_ok=True)
    cases = [
        ("under a non-directory parent", a_file / "out", "is not a directory"),
        ("under /proc", Path("/proc/tinyllm-test/out"), "cannot write in /proc"),
    ]
    if want_dir:
        cases.append(("an existing regular file", a_file, "exists and is not a directory"))
    else:
        cases.append(("an existing directory", a_dir, "is a directory"))
    return cases
