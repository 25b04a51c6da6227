"""`tinyllm checkpoint consolidate RUN_DIR --out CKPT`: a sharded (FSDP) checkpoint -> one file."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    c = sub.add_parser("checkpoint", help="work with checkpoints (consolidate a sharded FSDP checkpoint)")
    csub = c.add_subparsers(dest="checkpoint_command", required=True, metavar="ACTION")
    con = csub.add_parser(
        "consolidate",
        help="write a sharded checkpoint as the single file generate, chat, serve and export read",
        description="Read RUN_DIR/latest.dcp (or a checkpoints/step_N.dcp folder) with torch.distributed."
        "checkpoint and write the ordinary single-file checkpoint, optimizer state included (so it also "
        "resumes without FSDP).",
    )
    con.add_argument("run_dir", metavar="RUN_DIR", help="a run folder with latest.dcp, or a step_N.dcp folder")
    con.add_argument("--out", required=True, metavar="CKPT", help="the checkpoint file to write (atomically)")
    con.set_defaults(func=cmd_consolidate)


def cmd_consolidate(args) -> int:
    from pathlib import Path

    from ..errors import TinyLLMError
    from ..train import sharded

    out = Path(args.out)
    if out.is_dir():
        raise TinyLLMError(f"--out {out}: is a directory; give the checkpoint file to write, e.g. {out / 'model.pt'}")
    state = sharded.consolidate(Path(args.run_dir), out)
    print(f"wrote {out} (step {state.step}) from {sharded.resolve(Path(args.run_dir))}", file=sys.stderr)
    return 0
