"""`tinyllm chat`: ask a Q&A checkpoint questions; answers stream token by token.

Each line is a question, wrapped in the training template (`format_prompt`); the
answer is printed as it is generated and ends at <EOS> (or --max_tokens). Lines that
start with "/" change the sampling settings:

    /temp X     temperature (0 = greedy)     /top_k N    k most likely tokens (0 = off)
    /top_p P    nucleus mass (1 = off)        /max_tokens N
    /settings   show them                     /help       this list      /quit

Ctrl-D (end of input) or Ctrl-C exits with status 0. Answers go to stdout; the
banner, acknowledgements and notes go to stderr, so piped input gives piped answers.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

from .answer import stream_answer
from .sampling import SamplingSettingError, check_sampling

HELP = "commands: /temp X (0 = greedy), /top_k N (0 = off), /top_p P (1 = off), /max_tokens N, /settings, /help, /quit"

# command -> (setting, type, what a value is); the range check is generate.sampling.check_sampling's,
# the one `tinyllm generate` / `chat` apply to their flags
COMMANDS = {
    "/temp": ("temperature", float, "a number >= 0"),
    "/temperature": ("temperature", float, "a number >= 0"),
    "/top_k": ("top_k", int, "an integer >= 0 (0 = off)"),
    "/top_p": ("top_p", float, "a number in (0, 1] (1 = off)"),
    "/max_tokens": ("max_tokens", int, "a positive integer"),
}
OFF = {"top_k": 0, "top_p": 1.0}  # chat's "off" values, where the flags' is None


def describe(settings: dict) -> str:
    shown = dict(settings)
    shown["top_k"] = shown["top_k"] or "off"
    shown["top_p"] = shown["top_p"] if shown["top_p"] < 1 else "off"
    return ", ".join(f"{k} {v}" for k, v in shown.items())


def apply_command(line: str, settings: dict) -> str:
    """Run one /command against settings (changed in place); -> the message to show."""
    parts = line.split()
    cmd, args = parts[0].lower(), parts[1:]
    if cmd in ("/help", "/?"):
        return HELP
    if cmd == "/settings":
        return describe(settings)
    if cmd not in COMMANDS:
        return f"unknown command {cmd}; {HELP}"
    key, typ, wanted = COMMANDS[cmd]
    try:
        if len(args) != 1:
            raise ValueError
        value = typ(args[0])
    except ValueError:
        return f"{cmd} needs one value: {wanted}"
    try:
        check_sampling(**{key: None if key in OFF and value == OFF[key] else value})
    except SamplingSettingError as e:
        off = f" ({OFF[key]:g} = off)" if key in OFF else ""
        return f"{cmd} {args[0]}: must be {e.wanted}{off}"
    settings[key] = value
    return f"{key} set to {value}" + (" (off)" if (key, value) in (("top_k", 0), ("top_p", 1.0)) else "")


def _read_line(interactive: bool, stdin) -> str | None:
    """One line of input, or None at end of input (Ctrl-D)."""
    if interactive:
        try:
            return input("you> ")  # line editing and history when readline is present
        except EOFError:
            return None
    line = stdin.readline()
    return line or None


def chat_loop(model, tokenizer, info: dict, args, stdin=None, stdout=None, stderr=None) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    settings = {
        "temperature": args.temperature,
        "top_k": args.top_k or 0,
        "top_p": args.top_p if args.top_p is not None else 1.0,
        "max_tokens": args.max_tokens,
    }
    interactive = stdin is sys.stdin and stdin.isatty() and stdout.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # importing readline gives input() line editing and history
            importlib.import_module("readline")
    if not info.get("is_qa"):
        print(
            "note: this checkpoint was not trained on Q&A data; questions are wrapped in the Q&A template anyway",
            file=stderr,
        )
    print(f"tinyllm chat ({describe(settings)}). {HELP}. Ctrl-D or Ctrl-C to quit.", file=stderr, flush=True)
    try:
        while True:
            line = _read_line(interactive, stdin)
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if line.split()[0].lower() in ("/quit", "/exit", "/q"):
                    break
                print(apply_command(line, settings), file=stderr, flush=True)
                continue
            for piece in stream_answer(
                model,
                tokenizer,
                line,
                settings["max_tokens"],
                settings["temperature"],
                settings["top_k"] or None,
                settings["top_p"] if settings["top_p"] < 1 else None,
                args.seed,
            ):
                stdout.write(piece)
                stdout.flush()
            stdout.write("\n")
            stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C, at the prompt or mid-answer: leave quietly
        stdout.write("\n")
        stdout.flush()
    return 0
