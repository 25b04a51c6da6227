"""Importing C extensions (torch, numpy, pyarrow, zstandard) with SIGINT / SIGTERM held back.

A Ctrl-C that lands while an extension initialises breaks it half-way: numpy's core then refuses
to load again ("ImportError: cannot load module more than once per process", a traceback), and a
KeyboardInterrupt raised inside code an extension runs makes CPython exit by SIGINT even after our
own handler has printed `interrupted` and asked for 130. Blocking the two signals for the length
of the import (about a second for torch) and delivering them right after turns every such Ctrl-C
into the ordinary one: `interrupted`, exit 130 (tests/test_faults.py, "signals")."""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from collections.abc import Iterator

_HELD = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT / SIGTERM wait until the block ends (they are then delivered as usual). Only the main
    thread, where Python runs signal handlers, changes its mask; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a signal that came meanwhile is raised here


def import_uninterrupted(*names: str) -> None:
    """Import these modules (if not yet imported) with signals deferred."""
    with signals_deferred():
        for name in names:
            importlib.import_module(name)
