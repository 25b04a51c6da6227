"""`tinyllm prepare`: a large corpus -> token shards (data/prepare.py, data/shards.py)."""

from __future__ import annotations

import sys


def cmd_prepare(args) -> int:
    from ..data.formats import ReadOptions
    from ..data.prepare import prepare

    options = ReadOptions(args.text_field, args.bad_records)
    meta = prepare(args.data, args.tokenizer, args.out, args.shard_tokens, args.num_workers, args.progress, options)
    secs = meta["seconds"]
    n = meta["train_tokens"] + meta["val_tokens"]
    print(
        f"prepared {meta['train_tokens']:,} train tokens in {len(meta['train_shards'])} shard(s) and "
        f"{meta['val_tokens']:,} val tokens ({meta['dtype']}) in {args.out} in {secs:.1f}s "
        f"({n / max(secs, 1e-9):,.0f} tokens/s, {meta['encoder']}); train with: tinyllm train --data {args.out}",
        file=sys.stderr,
    )
    return 0


def add_corpus_format_flags(p) -> None:
    """--text_field and --bad_records: how JSON Lines / Parquet corpora are read (data/formats.py)."""
    p.add_argument(
        "--text_field",
        default="text",
        help="the JSON Lines field / Parquet column holding each record's text (default: text)",
    )
    p.add_argument(
        "--bad_records",
        choices=("fail", "skip"),
        default="fail",
        help="a JSON Lines line that is not JSON or lacks the field, or a null Parquet value: "
        "'fail' stops naming file, line and field (default); 'skip' skips it and warns with counts",
    )


def add_parser(sub) -> None:
    from .flags import add_progress_flag

    p = sub.add_parser(
        "prepare",
        help="tokenize a large corpus into token shards for `tinyllm train --data DIR`",
        description="Tokenize text files in parallel into uint16/uint32 token shards that "
        "`tinyllm train --data DIR` memmaps.",
    )
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="corpus files and/or folders of them (or 'bible'): .txt, .jsonl, .parquet, and .gz/.zst of .txt/.jsonl",
    )
    add_corpus_format_flags(p)
    p.add_argument("--tokenizer", required=True, help="tokenizer file (from `tinyllm tokenizer train`)")
    p.add_argument("--out", required=True, help="folder for the shards and meta.json")
    p.add_argument(
        "--shard_tokens",
        type=int,
        default=100_000_000,
        help="start a new shard after this many tokens (default: 100,000,000)",
    )
    p.add_argument("--num_workers", type=int, default=None, help="encoding threads/processes (default: all cores)")
    add_progress_flag(p, True, "show a progress bar on stderr (default: true)")
    p.set_defaults(func=cmd_prepare)
