"""The `tinyllm` command line: one module per subcommand (train, generate/chat, tokenizer,
prepare, bench), each with `add_parser(subparsers)` and the function it runs.

Errors a user can cause print one line `error: ...` on stderr and exit with code 2;
warnings print one line `warning: ...`. stdout carries only results (generated text,
ids), so output can be piped. Building the parser imports no torch: `tinyllm --help` and
`tinyllm tokenizer ...` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from .. import usable_cores
from ..errors import TinyLLMError
from ..imports import import_uninterrupted
from . import bench, checkpoint, eval, export, generate, prepare, serve, sweep, tokenizer, train

SUBCOMMANDS = (train, generate, tokenizer, prepare, bench, eval, export, serve, sweep, checkpoint)
# the C extensions a subcommand needs, imported first with Ctrl-C held back (tinyllm/imports.py);
# the tokenizer needs none (it must start without torch), every other subcommand but prepare needs torch
PRELOAD = {"tokenizer": (), "prepare": ("numpy",)}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is two lines (the command's usage line and the error, with the
    --help hint) instead of the whole usage block. Subcommand parsers are of this class too."""

    def error(self, message: str):
        usage = " ".join(self.format_usage().split())  # one line
        self.exit(
            2, f"{usage[:160] + ' ...' if len(usage) > 160 else usage}\nerror: {message} (see `{self.prog} --help`)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tinyllm", description="Train, sample and benchmark small GPTs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """One line per warning, `warning: <message>`, not Python's `file.py:110: Category:` and a source line;
    above a progress bar that is drawn (a corpus read while it counts warns mid-bar), not glued to it."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
        tqdm.tqdm.write(f"warning: {message}", file=file or sys.stderr)
        return
    print(f"warning: {message}", file=file or sys.stderr, flush=True)


THREADS_DEFAULTED = False  # OMP_NUM_THREADS was chosen by thread_defaults, not by the user


def thread_defaults(environ=os.environ) -> None:
    """Before torch is imported, when the user has not said: OpenMP threads wait passively (a spinning
    wait makes a shared machine several times slower; benchmarks/README.md, "Under load") and number
    the cores this process may run on (divided among the ranks torchrun starts on this machine)."""
    if environ.get("TINYLLM_THREAD_DEFAULTS") == "0":  # torch's own defaults (benchmarks/bench_contention.py)
        return
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "OMP_NUM_THREADS" not in environ:
        global THREADS_DEFAULTED
        THREADS_DEFAULTED = True
        cores = usable_cores()
        ranks = int(environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        environ["OMP_NUM_THREADS"] = str(max(1, cores // max(1, ranks)))


def main(argv: list[str] | None = None) -> int:
    """The `tinyllm` program (argv None: sys.argv) or one command called from Python (argv given)."""
    code = _command(argv)
    dist = sys.modules.get("tinyllm.train.distributed")
    if argv is None and dist is not None:  # the program, and it may have made a process group
        dist.exit_past_finalization(code)
    return code


def _command(argv: list[str] | None) -> int:
    if "torch" not in sys.modules:
        thread_defaults()
    try:
        parser = build_parser()  # it imports the config modules: a Ctrl-C there is an ordinary interrupt too
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        import_uninterrupted(*PRELOAD.get(getattr(args, "command", None), ("torch",)))
        return args.func(args)
    except TinyLLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tinyllm generate ... | head`
        return 0
    except OSError as e:  # a full disk, a vanished folder: what and why, in one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
