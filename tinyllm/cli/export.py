"""`tinyllm export` (a checkpoint as a transformers directory, a GGUF file or tiktoken files) and
`tinyllm import --from hf DIR` (a local transformers directory as a checkpoint). The work is in
tinyllm/export/; nothing here imports torch until a command runs."""

from __future__ import annotations

import sys

CHECKPOINT_FORMATS = ("hf", "gguf", "tiktoken")  # tinyllm.export.CHECKPOINT_FORMATS (not imported: --help stays light)


def add_parser(sub) -> None:
    e = sub.add_parser("export", help="write a checkpoint for transformers (hf), llama.cpp (gguf) or tiktoken")
    e.add_argument("--checkpoint", required=True, help="checkpoint file (e.g. out/demo/best.pt)")
    e.add_argument(
        "--format",
        required=True,
        choices=CHECKPOINT_FORMATS,
        help="hf: a transformers directory (model + tokenizer); gguf: one llama.cpp file; "
        "tiktoken: the tokenizer as a .tiktoken ranks file plus <out>.json",
    )
    e.add_argument("--out", required=True, help="a directory for hf, a file for gguf and tiktoken")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="convert a local transformers model directory into a tinyllm checkpoint")
    i.add_argument("--from", dest="source_format", required=True, choices=("hf",), help="hf: a transformers directory")
    i.add_argument("directory", metavar="DIR", help="a local directory (never a hub id: nothing is downloaded)")
    i.add_argument("--out", required=True, help="the checkpoint file to write (e.g. imported.pt)")
    i.set_defaults(func=cmd_import)


def check_export_out(fmt: str, out: str) -> None:
    """The output path, checked before anything is converted: hf writes a folder, the others a file."""
    from ..io import check_output_dir, check_output_file

    (check_output_dir if fmt == "hf" else check_output_file)(out, "--out")


def cmd_export(args) -> int:
    from ..export import export_checkpoint

    check_export_out(args.format, args.out)
    print(export_checkpoint(args.checkpoint, args.format, args.out), file=sys.stderr)
    return 0


def cmd_import(args) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: the importer reads files only
    from ..export import import_hf
    from ..io import check_output_file

    check_output_file(args.out, "--out")
    cfg = import_hf(args.directory, args.out)
    print(
        f"wrote {args.out}: {cfg.d_model}d, {cfg.n_layers} layers, {cfg.n_heads} heads, pos_emb {cfg.pos_emb}, "
        f"activation {cfg.activation}, bias {'on' if cfg.bias else 'off'}",
        file=sys.stderr,
    )
    return 0
