"""SIGTERM / SIGINT during training: finish the step, write a checkpoint, exit 0 (so torchrun's
elastic restarts pick the run up with --resume auto)."""

from __future__ import annotations

import contextlib
import signal


class StopRequest:
    """Records a SIGTERM / SIGINT instead of dying; a second signal of the same kind gets the
    default behaviour (a second Ctrl-C kills)."""

    def __init__(self, log=lambda msg: None):
        self.requested = False
        self.signal_name = None
        self._old = {}
        self._log = log

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
        self._log(f"\n{self.signal_name}: stopping after this step with a checkpoint (send it again to stop now)")

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
