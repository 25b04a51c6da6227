"""Put on PYTHONPATH of a test's subprocesses: a process whose interpreter begins finalization while
gloo threads still run (a process group nothing could free) says so on stderr, with WATCH_LINE.
Those threads can abort the process there (tinyllm/train/distributed.py: exit_past_finalization);
the tests that launch torchrun assert that the line never appears. Linux (/proc) only."""

import os

WATCH_LINE = "exit-watch: interpreter finalization began with gloo threads alive"


class _Watch:
    # runs when finalization clears this module; the defaults keep what it needs, as module
    # globals may be gone by then
    def __del__(self, listdir=os.listdir, write=os.write, open=open, line=WATCH_LINE):
        try:
            names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in listdir("/proc/self/task")]
        except OSError:
            return
        gloo = sorted(n for n in names if "gloo" in n)
        if gloo:
            write(2, f"{line}: {gloo}\n".encode())


_watch = _Watch()
