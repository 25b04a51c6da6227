"""The `tinyllm` command line: train, generate, chat, tokenizer, prepare, bench.

Errors a user can cause print one line `error: ...` on stderr and exit with code 2.
stdout carries only results (generated text, ids), so output can be piped.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import TinyLLMError


def _model_config(args, qa_pairs: int | None = None):
    """Preset (or TinyLLM's defaults) + explicit model flags -> ModelConfig, overrides dict."""
    import dataclasses

    from .model import ModelConfig, preset

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(ModelConfig)
                 if getattr(args, f.name, None) is not None}
    if args.use_learned_pos_emb is not None and "pos_emb" not in overrides:
        overrides["pos_emb"] = "learned" if args.use_learned_pos_emb else "sinusoidal"
    name = args.preset
    if name is None and qa_pairs is not None:
        from .data.auto import qa_preset_name
        name = qa_preset_name(qa_pairs)
    return preset(name or "tiny", **overrides), overrides, name or "tiny"


def cmd_train(args) -> int:
    import dataclasses

    from .data.qa import is_qa_file, resolve_qa_source
    from .train import TrainConfig, Trainer

    args.data = resolve_qa_source(args.data)  # 'qa': the demo Q&A set shipped in the package
    qa_pairs = None
    if args.data and is_qa_file(args.data) and os.path.isfile(args.data):
        from .data.auto import qa_train_defaults
        from .data.qa import load_qa
        pairs = load_qa(args.data)
        qa_pairs = len(pairs)
        from .model.config import SHAPE_FIELDS
        for k, v in qa_train_defaults(pairs, args.preset).items():  # fill only what the user left unset
            if args.init_from and k in SHAPE_FIELDS:
                continue  # fine-tuning: the model's shape comes from the checkpoint
            if getattr(args, k, None) is None:
                setattr(args, k, v)
    model_cfg, overrides, preset_name = _model_config(args, qa_pairs)
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(args, f.name, None) is not None}
    from .model.config import PRESETS
    fields.setdefault("out_dir", os.path.join("out", "qa" if qa_pairs is not None else preset_name))
    for k, v in PRESETS.get(preset_name, {}).get("train", {}).items():
        fields.setdefault(k, v)
    cfg = TrainConfig(**fields)
    trainer = Trainer(cfg, model_cfg, overrides, preset_explicit=args.preset is not None)
    result = trainer.run()
    if not trainer.dist.is_main:
        return 0
    print(f"done: {result.step} steps; last val loss {result.val_loss:.4f} "
          f"(best {result.best_val_loss:.4f}); checkpoints and metrics in {result.out_dir}", file=sys.stderr)
    if result.val_unigram_entropy is not None and result.val_loss is not None:
        verdict = "below" if result.val_loss < result.val_unigram_entropy else "NOT below"
        print(f"val loss {result.val_loss:.4f} is {verdict} the unigram entropy of the val tokens "
              f"{result.val_unigram_entropy:.4f} nats", file=sys.stderr)
    if cfg.sample_tokens > 0 and not result.stopped_early:
        from .generate import answer, generate
        print("--- sample (temperature 0.8, top_k 40) ---", file=sys.stderr)
        sampling = dict(temperature=0.8, top_k=40, seed=cfg.seed)
        if trainer.is_qa:  # the question as asked; the answer without the template's spaces
            text = answer(trainer.model, trainer.tokenizer, "Who are you?", max_tokens=cfg.sample_tokens, **sampling)
            print(f"Question: Who are you?\nAnswer: {text}")
        else:
            prompt = trainer.sample_prompt or "\n"
            print(prompt + generate(trainer.model, trainer.tokenizer, prompt, cfg.sample_tokens, **sampling))
    return 0


def _load_for_inference(args):
    from .train import load_checkpoint
    from .train.distributed import resolve_device

    device = resolve_device(args.device)
    model, tok, info = load_checkpoint(args.checkpoint, device=device)
    return model, tok, info


def _check_sampling(args):
    from .generate.sampling import check_sampling

    check_sampling(temperature=args.temperature, seed=args.seed, top_k=args.top_k, top_p=args.top_p,
                   max_tokens=getattr(args, "max_tokens", None))


def cmd_generate(args) -> int:
    from .generate import generate_ids, stream_answer, stream_text

    _check_sampling(args)
    model, tok, info = _load_for_inference(args)
    sampling = (args.max_tokens, args.temperature, args.top_k, args.top_p)
    if info.get("is_qa") and not args.raw:  # a question: wrap it in the training template, print only the answer
        pieces = stream_answer(model, tok, args.prompt, *sampling, seed=args.seed)
    else:
        pieces = stream_text(tok, generate_ids(model, tok.encode(args.prompt) or [tok.bos_id], *sampling,
                                               eos_id=tok.eos_id, seed=args.seed))
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_chat(args) -> int:
    from .chat import chat_loop

    _check_sampling(args)
    model, tok, info = _load_for_inference(args)
    return chat_loop(model, tok, info, args)


def cmd_tokenizer(args) -> int:
    from .tokenizer import Tokenizer

    if args.tok_cmd == "train":
        from .data.pipeline import load_corpus
        corpus = load_corpus(args.data)
        tok = Tokenizer.train(corpus.tokenizer_texts(), vocab_size=args.vocab_size, pattern=args.pattern,
                              num_threads=args.num_threads, show_progress=True)
        tok.save(args.out)
        print(f"saved a {tok.vocab_size}-token tokenizer to {args.out}", file=sys.stderr)
        return 0
    tok = Tokenizer.load(args.tokenizer)
    text = args.text if getattr(args, "text", None) is not None else None
    if args.tok_cmd == "encode":
        text = sys.stdin.read() if text is None else text
        print(" ".join(map(str, tok.encode(text))))
    elif args.tok_cmd == "decode":
        raw = args.ids if args.ids is not None else sys.stdin.read()
        try:
            ids = [int(t) for t in raw.replace(",", " ").split()]
        except ValueError:
            raise TinyLLMError("--ids must be whitespace- or comma-separated integers") from None
        bad = [i for i in ids if not 0 <= i < tok.vocab_size]
        if bad:
            raise TinyLLMError(f"--ids: id {bad[0]} is outside the vocabulary (0..{tok.vocab_size - 1})")
        sys.stdout.write(tok.decode(ids) + "\n")
    elif args.tok_cmd == "view":
        text = sys.stdin.read() if text is None else text
        print(tok.token_strings(text))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config_flags import add_dataclass_flags, str2bool
    from .model import ModelConfig
    from .model.config import PRESETS
    from .train import TrainConfig

    p = argparse.ArgumentParser(prog="tinyllm", description="Train, sample and benchmark small GPTs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model (single process, or under torchrun)",
                       description="Train a GPT. Model flags override the preset's values.")
    t.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="model size preset (default: tiny; Q&A data picks a size from its number of pairs)")
    add_dataclass_flags(t, TrainConfig, defaults_none=True, group_title="training")
    add_dataclass_flags(t, ModelConfig, defaults_none=True, group_title="model (override the preset)")
    t.add_argument("--use_learned_pos_emb", type=str2bool, default=None, metavar="BOOL",
                   help="TinyLLM's switch: True = --pos_emb learned, False = --pos_emb sinusoidal")
    t.set_defaults(func=cmd_train)

    def sampling_flags(q):
        q.add_argument("--checkpoint", required=True, help="checkpoint file (e.g. out/demo/best.pt)")
        q.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
        q.add_argument("--top_k", type=int, default=None, help="sample only from the k most likely tokens")
        q.add_argument("--top_p", type=float, default=None, help="sample from the smallest set reaching probability p")
        q.add_argument("--max_tokens", type=int, default=200, help="most new tokens (default: 200)")
        q.add_argument("--seed", type=int, default=None, help="seed for sampling (default: random)")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")

    g = sub.add_parser("generate", help="continue a prompt; only the generated text goes to stdout")
    sampling_flags(g)
    g.add_argument("--prompt", default="", help="text to continue (a question for Q&A checkpoints)")
    g.add_argument("--raw", action="store_true", help="Q&A checkpoints: do not wrap the prompt in the Q&A template")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("chat", help="ask a Q&A checkpoint questions interactively (Ctrl-D to quit)")
    sampling_flags(c)
    c.set_defaults(func=cmd_chat, temperature=0.0)

    k = sub.add_parser("tokenizer", help="train or use a BPE tokenizer")
    ksub = k.add_subparsers(dest="tok_cmd", required=True, metavar="ACTION")
    kt = ksub.add_parser("train", help="train a byte-level BPE tokenizer on a corpus")
    kt.add_argument("--data", default="bible",
                    help="'bible', 'qa' (the demo Q&A set), a text file, a folder of .txt files or Q&A JSON")
    kt.add_argument("--vocab_size", type=int, default=10000, help="tokens in total, special tokens included")
    kt.add_argument("--pattern", default="gpt4", help="pre-tokenization split pattern: gpt4 or gpt2")
    kt.add_argument("--num_threads", type=int, default=None, help="threads for counting (default: all cores)")
    kt.add_argument("--out", required=True, help="where to save the tokenizer file")
    for name, helptext in (("encode", "text -> ids (text from --text or stdin)"),
                           ("decode", "ids -> text (ids from --ids or stdin)"),
                           ("view", "show a text's tokens, spaces as '▁'")):
        q = ksub.add_parser(name, help=helptext)
        q.add_argument("--tokenizer", required=True, help="tokenizer file (e.g. out/demo/tokenizer.txt)")
        if name == "decode":
            q.add_argument("--ids", default=None, help="ids, e.g. '5 300 17'")
        else:
            q.add_argument("--text", default=None, help="the text")
    k.set_defaults(func=cmd_tokenizer)

    try:
        from .prepare import add_prepare_parser
        add_prepare_parser(sub)
    except ImportError:
        pass
    try:
        from .bench import add_bench_parser
        add_bench_parser(sub)
    except ImportError:
        pass
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
