"""Atomic file writes: a crash or a full disk never leaves a half-written file
in place of a good one (write to a temp file beside the target, fsync, rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to `path`; on clean exit rename it over `path`.

    On any exception the temp file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_torch(obj, path: str | os.PathLike) -> None:
    """torch.save through a temp file and a rename. A write error (a full disk) surfaces as the
    OSError it is: torch's zip writer would turn it into "RuntimeError: unexpected pos"."""
    import torch

    with atomic_open(path, "wb") as f:
        recorder = _WriteErrors(f)
        try:
            torch.save(obj, recorder)
        except RuntimeError:
            if recorder.error is not None:
                raise recorder.error from None
            raise


class _WriteErrors:
    """A file object that remembers the OSError a write raised."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


# ---- outputs: checked before the work, one writer each ------------------------------------------
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(directory: Path, what: str) -> None:
    """Create and remove a file in `directory`: the only check that sees read-only mounts, /proc,
    immutable folders and ACLs alike (os.access says yes to root on all of them)."""
    from .errors import TinyLLMError

    try:
        fd, tmp = tempfile.mkstemp(prefix=".tinyllm-probe.", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise TinyLLMError(f"{what}: cannot write in {directory} ({e.strerror or e})") from None


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Fail now, naming the path and the OS reason, if `path` cannot become a directory we write in:
    an existing file, a non-directory parent, a read-only or virtual filesystem. Creates nothing."""
    from .errors import TinyLLMError

    path = Path(path)
    what = f"{flag} {path}"
    if path.exists() and not path.is_dir():
        raise TinyLLMError(f"{what}: exists and is not a directory")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise TinyLLMError(f"{what}: {base} is not a directory")
    _probe_writable(base, what)
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """As check_output_dir, for a file we will write (atomically, beside its final name)."""
    from .errors import TinyLLMError

    path = Path(path)
    what = f"{flag} {path}"
    if path.is_dir():
        raise TinyLLMError(f"{what}: is a directory, expected a file name")
    if path.exists() and not path.is_file():
        raise TinyLLMError(f"{what}: exists and is not a regular file")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise TinyLLMError(f"{what}: {base} is not a directory")
    _probe_writable(base, what)
    return path


class OutputLock:
    """One writer per output: an advisory lock (flock) on DIR/.tinyllm.lock, which holds the owner's
    pid, host and command. A second writer fails at once naming the owner; a lock file left by a
    killed process is not held by anyone (the kernel drops flocks with their process), so it is taken
    over with a note. Released on exit. For a file output, the lock sits beside it (.NAME.lock)."""

    def __init__(self, target: str | os.PathLike, what: str, log=None, is_file: bool = False):
        target = Path(target)
        self.path = target.parent / f".{target.name}.lock" if is_file else target / ".tinyllm.lock"
        self.what, self.log, self._fd = what, log, None

    def __enter__(self) -> OutputLock:
        import fcntl
        import json
        import socket
        import sys
        import time

        from .errors import TinyLLMError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise TinyLLMError(
                    f"{self.what} is in use by another tinyllm run ({owner}); wait for it to "
                    f"finish or write somewhere else"
                ) from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break  # locked the file that is there now (not one its last owner just unlinked)
            except FileNotFoundError:
                pass
            os.close(fd)
        stale = _read_owner(fd, default="")
        if stale and self.log:
            self.log(f"note: took over {self.path}, left by a run that did not exit cleanly ({stale})")
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv[:3]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
        except OSError as e:  # a full disk: do not keep a lock that nobody will release
            os.close(fd)
            raise TinyLLMError(f"{self.what}: cannot write its lock file {self.path} ({e.strerror or e})") from None
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:  # still ours, not a newer writer's
                    os.unlink(self.path)  # before unlocking: whoever opens it next makes a new one
            os.close(self._fd)
            self._fd = None


def _read_owner(fd: int, default: str = "owner unknown") -> str:
    import json

    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
        return f"pid {info['pid']} on {info['host']}, `{info['command']}`, since {info['since']}"
    except (OSError, ValueError, TypeError, KeyError):
        return default


@contextlib.contextmanager
def owned_dir(path: str | os.PathLike, flag: str, log=None) -> Iterator[Path]:
    """The output folder of one run: checked before any work (check_output_dir), created only now,
    locked against a second writer (OutputLock) while the block runs, and removed again if the block
    fails before anything was written in it (a failed run leaves no empty folder behind)."""
    path = check_output_dir(path, flag)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from .errors import TinyLLMError

        raise TinyLLMError(f"{flag} {path}: cannot create ({e.strerror or e})") from None
    try:
        with OutputLock(path, f"{flag} {path}", log):
            yield path
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty
        raise
