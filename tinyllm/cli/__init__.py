"""The `tinyllm` command line: one module per subcommand (train, generate/chat, tokenizer,
prepare, bench), each with `add_parser(subparsers)` and the function it runs.

Errors a user can cause print one line `error: ...` on stderr and exit with code 2;
warnings print one line `warning: ...`. stdout carries only results (generated text,
ids), so output can be piped. Building the parser imports no torch: `tinyllm --help` and
`tinyllm tokenizer ...` start fast.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import TinyLLMError
from . import bench, checkpoint, eval, export, generate, prepare, serve, sweep, tokenizer, train

SUBCOMMANDS = (train, generate, tokenizer, prepare, bench, eval, export, serve, sweep, checkpoint)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyllm", description="Train, sample and benchmark small GPTs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """One line per warning, `warning: <message>`, not Python's `file.py:110: Category:` and a source line."""
    print(f"warning: {message}", file=file or sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except TinyLLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tinyllm generate ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
