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
        self._cutting = False  # inside abandonable(): a signal abandons the call

    def abandonable(self, fn, what: str, enabled: bool = True, then=None):
        """fn() (an evaluation), which a signal abandons at once instead of waiting for it to end:
        -> fn's result, or None when abandoned (then() runs, e.g. to put the model back in training
        mode), and the caller goes on to save and stop. Single process only: under DDP every rank must
        reach the same collectives, so there fn runs to its end."""
        try:
            try:
                self._cutting = enabled
                return fn()
            finally:
                self._cutting = False
        except _Abandon:  # outside the inner finally: a signal that lands in it is caught here too
            self._log(f"{self.signal_name}: {what} abandoned")
            if then is not None:
                then()
            return None

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
        if self._cutting:
            self._cutting = False
            raise _Abandon

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Abandon(BaseException):
    """Raised by the signal handler inside StopRequest.abandonable(); a BaseException, so that no
    `except Exception` on the way swallows it."""
