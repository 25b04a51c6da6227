"""`tinyllm generate` (continue a prompt, or answer a question for a Q&A checkpoint) and
`tinyllm chat` (ask a Q&A checkpoint questions interactively)."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    g = sub.add_parser("generate", help="continue a prompt; only the generated text goes to stdout")
    sampling_flags(g, default_temperature=0.8)
    g.add_argument("--prompt", default="", help="text to continue (a question for Q&A checkpoints)")
    g.add_argument("--raw", action="store_true", help="Q&A checkpoints: do not wrap the prompt in the Q&A template")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("chat", help="ask a Q&A checkpoint questions interactively (Ctrl-D to quit)")
    sampling_flags(c, default_temperature=0.0)
    c.set_defaults(func=cmd_chat)


def sampling_flags(q, default_temperature: float) -> None:
    q.add_argument("--checkpoint", required=True, help="checkpoint file (e.g. out/demo/best.pt)")
    q.add_argument(
        "--temperature", type=float, default=default_temperature, help=f"0 = greedy (default: {default_temperature:g})"
    )
    q.add_argument("--top_k", type=int, default=None, help="sample only from the k most likely tokens")
    q.add_argument("--top_p", type=float, default=None, help="sample from the smallest set reaching probability p")
    q.add_argument("--max_tokens", type=int, default=200, help="most new tokens (default: 200)")
    q.add_argument("--seed", type=int, default=None, help="seed for sampling (default: random)")
    q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")


def check_sampling_flags(args) -> None:
    """The one range check (generate.sampling.check_sampling) that chat's /commands use too."""
    from ..generate.sampling import check_sampling

    check_sampling(
        temperature=args.temperature, seed=args.seed, top_k=args.top_k, top_p=args.top_p, max_tokens=args.max_tokens
    )


def load_for_inference(args):
    """Check the sampling flags, then load the checkpoint: -> (model, tokenizer, info)."""
    from ..train.checkpoint import load_checkpoint
    from ..train.distributed import resolve_device

    check_sampling_flags(args)
    model, tokenizer, info = load_checkpoint(args.checkpoint, device=resolve_device(args.device))
    return model.pack_for_inference(), tokenizer, info


def cmd_generate(args) -> int:
    from ..generate import generate_ids, stream_answer, stream_text

    model, tok, info = load_for_inference(args)
    sampling = (args.max_tokens, args.temperature, args.top_k, args.top_p)
    if info.get("is_qa") and not args.raw:  # a question: wrap it in the training template, print only the answer
        pieces = stream_answer(model, tok, args.prompt, *sampling, seed=args.seed)
    else:
        pieces = stream_text(
            tok,
            generate_ids(model, tok.encode(args.prompt) or [tok.bos_id], *sampling, eos_id=tok.eos_id, seed=args.seed),
        )
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_chat(args) -> int:
    from ..generate.chat import chat_loop

    model, tok, info = load_for_inference(args)
    return chat_loop(model, tok, info, args)
