"""`tinyllm chat`: ask a Q&A checkpoint questions; answers stream token by token.

Commands at the prompt: /temp X, /top_k N (0 = off), /top_p P (1 = off), /settings,
/help, /quit. Ctrl-D or Ctrl-C exits cleanly.
"""

from __future__ import annotations

import sys

from .data.qa import format_prompt
from .generate import generate_ids, stream_text

HELP = "commands: /temp X  /top_k N (0 = off)  /top_p P (1 = off)  /settings  /help  /quit"


def _apply_command(line: str, settings: dict) -> str:
    parts = line.split()
    cmd, arg = parts[0], parts[1] if len(parts) > 1 else None
    if cmd in ("/help", "/?"):
        return HELP
    if cmd == "/settings":
        return ", ".join(f"{k}={v}" for k, v in settings.items())
    specs = {"/temp": ("temperature", float, lambda v: v >= 0),
             "/top_k": ("top_k", int, lambda v: v >= 0),
             "/top_p": ("top_p", float, lambda v: 0 < v <= 1)}
    if cmd not in specs:
        return f"unknown command {cmd}; {HELP}"
    key, typ, ok = specs[cmd]
    try:
        value = typ(arg)
    except (TypeError, ValueError):
        return f"{cmd} needs a {typ.__name__} value"
    if not ok(value):
        return f"{cmd}: {value} is out of range"
    settings[key] = value
    return f"{key} = {value}"


def chat_loop(model, tokenizer, info: dict, args, stdin=None, stdout=None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    settings = {"temperature": args.temperature, "top_k": args.top_k or 0, "top_p": args.top_p or 1.0,
                "max_tokens": args.max_tokens}
    if not info.get("is_qa"):
        print("note: this checkpoint was not trained on Q&A data; questions are wrapped in the Q&A template anyway",
              file=sys.stderr)
    interactive = stdin.isatty()
    if interactive:
        print(f"tinyllm chat. {HELP}. Ctrl-D to quit.", file=sys.stderr)
    try:
        while True:
            if interactive:
                stdout.write("you> ")
                stdout.flush()
            line = stdin.readline()
            if not line:  # EOF (Ctrl-D)
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if line.split()[0] in ("/quit", "/exit"):
                    break
                print(_apply_command(line, settings), file=stdout, flush=True)
                continue
            ids = tokenizer.encode(format_prompt(line))
            out = generate_ids(model, ids, settings["max_tokens"], settings["temperature"],
                               settings["top_k"] or None,
                               settings["top_p"] if settings["top_p"] < 1 else None,
                               tokenizer.eos_id, args.seed)
            if interactive:
                stdout.write("bot> ")
            for piece in stream_text(tokenizer, out):
                stdout.write(piece)
                stdout.flush()
            stdout.write("\n")
            stdout.flush()
    except KeyboardInterrupt:
        stdout.write("\n")
    return 0
