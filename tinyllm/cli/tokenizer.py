"""`tinyllm tokenizer train|encode|decode|view`: byte-level BPE without torch."""

from __future__ import annotations

import sys

from ..errors import TinyLLMError


def add_parser(sub) -> None:
    k = sub.add_parser("tokenizer", help="train or use a BPE tokenizer")
    ksub = k.add_subparsers(dest="tok_cmd", required=True, metavar="ACTION")
    kt = ksub.add_parser("train", help="train a byte-level BPE tokenizer on a corpus")
    kt.add_argument(
        "--data",
        default="bible",
        help="'bible', 'qa' (the demo Q&A set), a corpus file (.txt, .jsonl, .parquet, .gz/.zst of .txt/.jsonl), "
        "a folder of them, or Q&A JSON",
    )
    from .prepare import add_corpus_format_flags

    add_corpus_format_flags(kt)
    kt.add_argument("--vocab_size", type=int, default=10000, help="tokens in total, special tokens included")
    kt.add_argument("--pattern", default="gpt4", help="pre-tokenization split pattern: gpt4 or gpt2")
    kt.add_argument("--num_threads", type=int, default=None, help="threads for counting (default: all cores)")
    kt.add_argument("--out", required=True, help="where to save the tokenizer file")
    from .flags import add_progress_flag

    add_progress_flag(
        kt, None, "show progress bars on stderr (default: when stderr is a terminal; the corpus is read while they run)"
    )
    for name, helptext in (
        ("encode", "text -> ids (text from --text or stdin)"),
        ("decode", "ids -> text (ids from --ids or stdin)"),
        ("view", "show a text's tokens, spaces as '▁'"),
    ):
        q = ksub.add_parser(name, help=helptext)
        q.add_argument("--tokenizer", required=True, help="tokenizer file (e.g. out/demo/tokenizer.txt)")
        if name == "decode":
            q.add_argument("--ids", default=None, help="ids, e.g. '5 300 17'")
        else:
            q.add_argument("--text", default=None, help="the text")
    ke = ksub.add_parser("export", help="write the tokenizer for Hugging Face (hf) or tiktoken")
    ke.add_argument("--tokenizer", required=True, help="tokenizer file (e.g. out/demo/tokenizer.txt)")
    ke.add_argument(
        "--format",
        required=True,
        choices=("hf", "tiktoken"),
        help="hf: a directory AutoTokenizer loads (tokenizer.json & co); tiktoken: a .tiktoken ranks file plus <out>.json",
    )
    ke.add_argument("--out", required=True, help="a directory for hf, a file for tiktoken")
    k.set_defaults(func=cmd_tokenizer)


def cmd_tokenizer(args) -> int:
    from ..tokenizer import Tokenizer

    if args.tok_cmd == "train":
        from ..io import OutputLock, check_output_file

        check_output_file(args.out, "--out")  # before the work, not after it
        with OutputLock(args.out, f"--out {args.out}", lambda m: print(m, file=sys.stderr), is_file=True):
            tok = Tokenizer.train(
                training_documents(args.data, args.text_field, args.bad_records),
                vocab_size=args.vocab_size,
                pattern=args.pattern,
                num_threads=args.num_threads,
                show_progress=sys.stderr.isatty() if args.progress is None else args.progress,
            )
            tok.save(args.out)
        print(f"saved a {tok.vocab_size}-token tokenizer to {args.out}", file=sys.stderr)
        return 0
    tok = Tokenizer.load(args.tokenizer)
    if args.tok_cmd == "export":
        from ..export import export_tokenizer
        from .export import check_export_out

        check_export_out(args.format, args.out)
        print("wrote " + " and ".join(map(str, export_tokenizer(tok, args.format, args.out))), file=sys.stderr)
        return 0
    if args.tok_cmd == "decode":
        sys.stdout.write(tok.decode(parse_ids(args.ids if args.ids is not None else sys.stdin.read(), tok)) + "\n")
        return 0
    text = sys.stdin.read() if args.text is None else args.text
    if args.tok_cmd == "encode":
        print(" ".join(map(str, tok.encode(text))))
    else:
        print(tok.token_strings(text))
    return 0


def training_documents(data: str, text_field: str, bad_records: str):
    """What a tokenizer trains on: the documents `tinyllm train` and `prepare` cut from --data. A corpus
    file or folder streams (tokenizer.Paragraphs: 105 MB of text took 948 MB and 3.0 s loaded into
    documents first, 117 MB and 0.95 s streamed; benchmarks/README.md); the Bible and Q&A sets are small
    and load whole."""
    from ..data.corpus import BIBLE, load_corpus, stream_paragraphs
    from ..data.formats import ReadOptions
    from ..data.qa import is_qa_file, resolve_qa_source

    source, options = resolve_qa_source(data), ReadOptions(text_field, bad_records)
    if source not in ("", BIBLE) and not is_qa_file(source):
        return stream_paragraphs(source, options)
    return load_corpus(source, options=options).tokenizer_texts()


def parse_ids(raw: str, tok) -> list[int]:
    try:
        ids = [int(t) for t in raw.replace(",", " ").split()]
    except ValueError:
        raise TinyLLMError("--ids must be whitespace- or comma-separated integers") from None
    bad = [i for i in ids if not 0 <= i < tok.vocab_size]
    if bad:
        raise TinyLLMError(f"--ids: id {bad[0]} is outside the vocabulary (0..{tok.vocab_size - 1})")
    return ids
