"""`tinyllm eval`: loss, perplexity and bits per byte of a checkpoint on a held-out text.

stdout carries the result (one JSON object with --json, else two lines); nothing else."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    e = sub.add_parser(
        "eval",
        help="loss, perplexity and bits per byte of a checkpoint on a text",
        description=(
            "Evaluate a checkpoint on the whole of a text, cut into non-overlapping context-length chunks "
            "(every token but the first scored once), batched. Bits per byte = total nats / ln 2 / UTF-8 "
            "bytes of the scored tokens, so models with different tokenizers compare."
        ),
    )
    e.add_argument("--checkpoint", required=True, help="checkpoint file (e.g. out/demo/best.pt)")
    e.add_argument(
        "--data",
        default=None,
        metavar="TEXT_OR_DIR",
        help="a text file, a folder of .txt files, or 'bible' (default: the checkpoint's training data)",
    )
    e.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="all: the whole text; train / val: that split of the corpus, as `tinyllm train` makes it",
    )
    e.add_argument("--max_tokens", type=int, default=None, help="score only the first N tokens")
    e.add_argument("--batch_size", type=int, default=None, help="chunks per forward pass (default: 16)")
    e.add_argument(
        "--trainer_batches",
        action="store_true",
        help="instead of the whole text, the trainer's estimate: its eval_iters random batches from its seed "
        "(with --split val, reproduces the val_loss / val_bpb metrics.jsonl logged for the checkpoint's step)",
    )
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    e.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..eval.run import evaluate_checkpoint

    r = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, args.max_tokens, args.batch_size, args.trainer_batches, args.device
    )
    if args.json:
        print(json.dumps(r))
        return 0
    scored = f"{r['tokens']:,} tokens, {r['bytes']:,} bytes" if "tokens" in r else f"{r['text_tokens']:,} tokens"
    print(f"{r['checkpoint']} (step {r['step']}) on {r['data']}: {scored}; {r['method']}")
    print(f"loss {r['loss']:.4f} nats/token, perplexity {r['perplexity']:.2f}, {r['bpb']:.4f} bits per byte")
    return 0
