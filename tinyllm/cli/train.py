"""`tinyllm train`: flags -> resolve_run -> Trainer, then a summary and a generated sample."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    from ..model.config import ModelConfig
    from ..train.config import TrainConfig
    from ..train.presets import PRESETS
    from .flags import add_dataclass_flags, str2bool

    t = sub.add_parser(
        "train",
        help="train a model (single process, or under torchrun)",
        description="Train a GPT. Model flags override the preset's values.",
    )
    t.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="model size and training defaults (default: tiny; Q&A data picks a size from its number of pairs)",
    )
    add_dataclass_flags(t, TrainConfig, defaults_none=True, group_title="training")
    add_dataclass_flags(t, ModelConfig, defaults_none=True, group_title="model (override the preset)")
    t.add_argument(
        "--use_learned_pos_emb",
        type=str2bool,
        default=None,
        metavar="BOOL",
        help="TinyLLM's switch: True = --pos_emb learned, False = --pos_emb sinusoidal",
    )
    t.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ..train import Trainer
    from ..train.run_config import MODEL_FIELDS, TRAIN_FIELDS, resolve_run

    run = resolve_run(
        preset=args.preset,
        use_learned_pos_emb=args.use_learned_pos_emb,
        **{k: getattr(args, k) for k in MODEL_FIELDS + TRAIN_FIELDS},
    )
    trainer = Trainer(run)
    result = trainer.run()
    if not trainer.main:
        return 0
    losses = (
        "no evaluation yet"
        if result.val_loss is None
        else f"last val loss {result.val_loss:.4f} (best {result.best_val_loss:.4f})"
    )
    print(f"done: {result.step} steps; {losses}; checkpoints and metrics in {result.out_dir}", file=sys.stderr)
    if result.val_unigram_entropy is not None and result.val_loss is not None:
        verdict = "below" if result.val_loss < result.val_unigram_entropy else "NOT below"
        print(
            f"val loss {result.val_loss:.4f} is {verdict} the unigram entropy of the val tokens "
            f"{result.val_unigram_entropy:.4f} nats",
            file=sys.stderr,
        )
    if run.train.sample_tokens > 0 and not result.stopped_early:
        print_sample(trainer, run.train)
    return 0


def print_sample(trainer, cfg) -> None:
    """What the trained model writes: an answer for Q&A, else a continuation of the val text's first words."""
    from ..generate import answer, generate

    print("--- sample (temperature 0.8, top_k 40) ---", file=sys.stderr)
    sampling = dict(temperature=0.8, top_k=40, seed=cfg.seed)
    if trainer.is_qa:  # the question as asked; the answer without the template's spaces
        text = answer(trainer.model, trainer.tokenizer, "Who are you?", max_tokens=cfg.sample_tokens, **sampling)
        print(f"Question: Who are you?\nAnswer: {text}")
    else:
        prompt = trainer.sample_prompt or "\n"
        print(prompt + generate(trainer.model, trainer.tokenizer, prompt, cfg.sample_tokens, **sampling))
