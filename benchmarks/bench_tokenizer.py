"""Tokenizer benchmark: tinyllm's C++ BPE against HF tokenizers, rustbpe, sentencepiece
and tiktoken, on a >=100 MB corpus built from text already on this machine.

    python benchmarks/bench_tokenizer.py                  # builds the corpus on first run
    python benchmarks/bench_tokenizer.py --encode-mb 20 --threads 2 --vocab-size 32000

Training: each tool trains a byte-level BPE vocab of --vocab-size on the whole corpus
with --threads threads, in its own subprocess; we report wall time of the training call
(imports excluded) and the subprocess's peak RSS (ru_maxrss, interpreter included).
  ours           Tokenizer.train(Path(corpus), num_threads=T)       gpt4 split pattern
  hf-tokenizers  BpeTrainer + ByteLevel pre-tokenizer, train([corpus]) RAYON_NUM_THREADS=T
  rustbpe        train_from_iterator(64 KB blocks of whole lines, gpt4 pattern, buffer_size=256)
                 RAYON_NUM_THREADS=T (its fastest feeding here: line by line took ~25% longer)
  sentencepiece  model_type=bpe, byte_fallback, num_threads=T
Encoding: MB/s of UTF-8 input on an --encode-mb sample of the corpus's documents
(every k-th document, so English, other languages and code all appear):
  one string  all sampled documents joined, encoded on one thread
  batch       the documents as a list, on --threads threads
tiktoken and HF tokenizers get our 32k vocab (tiktoken.Encoding from our ranks; an HF
BPE model from our merges), so they produce the same ids - checked, not assumed;
rustbpe cannot load a vocab, so it encodes with the one it trained (same size).

Every number is printed as a table with ratios against the other tools measured in the
same run, and appended as CSV rows (what, ours, against, theirs, ratio, machine,
commit, date) to benchmarks/results/tokenizer.csv.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from tokenizer_corpus import DEFAULT_OUT, ensure_corpus, load_documents  # noqa: E402

from tinyllm.bench import provenance  # noqa: E402

RESULTS = HERE / "results" / "tokenizer.csv"
GPT4 = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
SPECIALS = ["<PAD>", "<UNK>", "<BOS>", "<EOS>"]


# ---------------------------------------------------------------------------------------
# training, one tool per subprocess
# ---------------------------------------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def train_worker(tool: str, corpus: Path, vocab_size: int, threads: int, out: Path | None) -> dict:
    info = {"tool": tool}
    if tool == "ours":
        from tinyllm.tokenizer import Tokenizer

        info["torch_imported"] = "torch" in sys.modules
        info["import_rss_mb"] = _rss_mb()
        t = time.perf_counter()
        tok = Tokenizer.train(corpus, vocab_size=vocab_size, num_threads=threads, show_progress=False)
        info["seconds"] = time.perf_counter() - t
        info["vocab"] = tok.vocab_size
        if out:
            tok.save(out)
    elif tool == "hf-tokenizers":
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        info["import_rss_mb"] = _rss_mb()
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIALS,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        t = time.perf_counter()
        tk.train([str(corpus)], trainer)
        info["seconds"] = time.perf_counter() - t
        info["vocab"] = tk.get_vocab_size()
    elif tool == "rustbpe":
        import rustbpe

        info["import_rss_mb"] = _rss_mb()
        tk = rustbpe.Tokenizer()
        t = time.perf_counter()
        tk.train_from_iterator(corpus_blocks(corpus), vocab_size, buffer_size=256, pattern=GPT4)
        info["seconds"] = time.perf_counter() - t
        info["vocab"] = tk.vocab_size
    elif tool == "sentencepiece":
        import sentencepiece as spm

        info["import_rss_mb"] = _rss_mb()
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            spm.SentencePieceTrainer.train(
                input=str(corpus),
                model_prefix=f"{d}/m",
                vocab_size=vocab_size,
                model_type="bpe",
                byte_fallback=True,
                num_threads=threads,
                max_sentence_length=1 << 16,
                minloglevel=2,
            )
            info["seconds"] = time.perf_counter() - t
            info["vocab"] = spm.SentencePieceProcessor(model_file=f"{d}/m.model").vocab_size()
    else:
        raise SystemExit(f"unknown tool {tool}")
    info["peak_rss_mb"] = _rss_mb()
    return info


def corpus_blocks(corpus: Path, block: int = 1 << 16):
    """The corpus as ~64 KB strings of whole lines (streamed; joined back they are the file)."""
    with open(corpus, encoding="utf-8") as f:
        acc, n = [], 0
        for line in f:
            acc.append(line)
            n += len(line)
            if n >= block:
                yield "".join(acc)
                acc, n = [], 0
        if acc:
            yield "".join(acc)


def run_train(tool: str, corpus: Path, vocab_size: int, threads: int, out: Path | None = None) -> dict:
    env = dict(
        os.environ,
        RAYON_NUM_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [
        sys.executable,
        __file__,
        "--_train-worker",
        tool,
        "--corpus",
        str(corpus),
        "--vocab-size",
        str(vocab_size),
        "--threads",
        str(threads),
    ] + (["--_out", str(out)] if out else [])
    print(f"  training {tool} ...", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr[-2000:], file=sys.stderr)
        return {"tool": tool, "error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"rc={p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# encoding, in this process
# ---------------------------------------------------------------------------------------
def sample_documents(corpus: Path, megabytes: float) -> list[str]:
    docs = load_documents(corpus)
    total = sum(len(d.encode()) for d in docs)
    step = max(1, int(total / (megabytes * 1e6)))
    out, size = [], 0
    for d in docs[::step]:
        out.append(d)
        size += len(d.encode())
        if size >= megabytes * 1e6:
            break
    return out


def hf_from_ours(tok):
    """An HF tokenizers BPE with our vocab and merges (GPT-2 byte-to-unicode alphabet)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_char = {b: chr(c) for b, c in zip(bs, cs)}

    def show(b: bytes) -> str:
        return "".join(byte_char[x] for x in b)

    vocab = {show(b): i for b, i in tok.mergeable_ranks().items()}
    merges = [(show(tok.token_bytes(a)), show(tok.token_bytes(b))) for a, b in tok.merges]
    hf = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    # Oniguruma reads `{1,3}+` as "repeat {1,3} one or more times", not possessive; for
    # this pattern the plain greedy `{1,3}` matches the same as the possessive form
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GPT4.replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return hf


def timed(fn, reps: int):
    """(best seconds, result of the last run)."""
    best, result = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def run_encode(tok_path: Path, corpus: Path, megabytes: float, threads: int, vocab_size: int, reps: int) -> list[dict]:
    import rustbpe
    import tiktoken  # noqa: F401

    from tinyllm.tokenizer import Tokenizer

    tok = Tokenizer.load(tok_path)
    docs = sample_documents(corpus, megabytes)
    text = "".join(docs)
    mb = len(text.encode()) / 1e6
    print(f"  encoding {mb:.1f} MB ({len(docs)} documents) ...", file=sys.stderr, flush=True)
    rows = []

    def add(tool, mode, seconds, same_ids, note=""):
        rows.append({"tool": tool, "mode": mode, "mb_per_s": mb / seconds, "same_ids": same_ids, "note": note})

    t, ours_one = timed(lambda: tok.encode(text, allowed_special="none"), reps)
    add("ours", "one string, 1 thread", t, True)
    t, ours_batch = timed(lambda: tok.encode_batch(docs, num_threads=threads, allowed_special="none"), reps)
    add("ours", f"batch, {threads} threads", t, True)

    enc = tok.to_tiktoken()
    t, ids = timed(lambda: enc.encode_ordinary(text), reps)
    add("tiktoken", "one string, 1 thread", t, ids == ours_one)
    t, ids = timed(lambda: enc.encode_ordinary_batch(docs, num_threads=threads), reps)
    add("tiktoken", f"batch, {threads} threads", t, ids == ours_batch)

    hf = hf_from_ours(tok)
    t, ids = timed(lambda: hf.encode(text, add_special_tokens=False).ids, 1)
    add("hf-tokenizers", "one string, 1 thread", t, ids == ours_one)
    t, ids = timed(lambda: [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)], reps)
    add("hf-tokenizers", f"batch, {threads} threads", t, ids == ours_batch)

    print("  training rustbpe again for its encoder ...", file=sys.stderr, flush=True)
    rb = rustbpe.Tokenizer()
    rb.train_from_iterator(corpus_blocks(corpus), vocab_size, buffer_size=256, pattern=GPT4)
    t, _ = timed(lambda: rb.encode(text), reps)
    add("rustbpe", "one string, 1 thread", t, None, "own vocab (cannot load ours), same size")
    t, _ = timed(lambda: rb.batch_encode(docs), reps)
    add("rustbpe", f"batch, {threads} threads", t, None, "own vocab (cannot load ours), same size")
    return rows, mb


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def machine() -> str:
    return provenance.machine()


def commit() -> str:
    return provenance.git_commit("csrc", "tinyllm/tokenizer")


def main() -> None:
    ap = argparse.ArgumentParser(description="tinyllm tokenizer benchmark (training and encoding)")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_OUT, help="corpus file (built if missing)")
    ap.add_argument("--corpus-mb", type=int, default=110, help="size of the corpus to build if missing")
    ap.add_argument("--vocab-size", type=int, default=32000, help="vocabulary size for every tool")
    ap.add_argument("--threads", type=int, default=2, help="threads for training and batch encoding")
    ap.add_argument("--encode-mb", type=float, default=20, help="MB of sampled documents to encode")
    ap.add_argument("--reps", type=int, default=3, help="encode repetitions (best is reported)")
    ap.add_argument(
        "--train-tools", default="ours,hf-tokenizers,rustbpe,sentencepiece", help="comma-separated training contestants"
    )
    ap.add_argument("--no-csv", action="store_true", help="do not append rows to benchmarks/results/")
    ap.add_argument("--_train-worker", help=argparse.SUPPRESS)
    ap.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._train_worker:
        print(json.dumps(train_worker(args._train_worker, args.corpus, args.vocab_size, args.threads, args._out)))
        return

    corpus = ensure_corpus(args.corpus, args.corpus_mb)
    size_mb = corpus.stat().st_size / 1e6
    print(
        f"corpus {corpus} ({size_mb:.1f} MB); vocab {args.vocab_size}; {args.threads} threads; {machine()}; "
        f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews timings)",
        file=sys.stderr,
    )
    tmp = Path(tempfile.mkdtemp(prefix="tinyllm-bench-"))
    tok_path = tmp / "ours.tok"

    train = {}
    for tool in args.train_tools.split(","):
        train[tool] = run_train(tool, corpus, args.vocab_size, args.threads, tok_path if tool == "ours" else None)
    enc_rows, enc_mb = run_encode(tok_path, corpus, args.encode_mb, args.threads, args.vocab_size, args.reps)

    rows = []  # (what, ours, against, theirs, unit, ratio)
    print(f"\nTraining: {size_mb:.0f} MB corpus, vocab {args.vocab_size}, {args.threads} threads")
    print(f"{'tool':18s} {'seconds':>9s} {'peak MB':>9s} {'import MB':>10s} {'vocab':>7s}   note")
    for tool, r in train.items():
        if "error" in r:
            print(f"{tool:18s} failed: {r['error']}")
            continue
        note = "tinyllm/__init__ imports torch" if r.get("torch_imported") else ""
        print(
            f"{tool:18s} {r['seconds']:9.2f} {r['peak_rss_mb']:9.0f} {r['import_rss_mb']:10.0f} {r['vocab']:7d}   {note}"
        )
    anchors = {t: r for t, r in train.items() if t != "ours" and "error" not in r}
    verdicts = []
    ours = train.get("ours", {})
    if "seconds" in ours:
        for tool, r in anchors.items():
            rows.append(
                (
                    f"train {size_mb:.0f}MB vocab {args.vocab_size} {args.threads}thr seconds",
                    "ours",
                    ours["seconds"],
                    tool,
                    r["seconds"],
                    "s",
                    r["seconds"] / ours["seconds"],
                )
            )
            rows.append(
                (
                    f"train {size_mb:.0f}MB vocab {args.vocab_size} {args.threads}thr peak RSS",
                    "ours",
                    ours["peak_rss_mb"],
                    tool,
                    r["peak_rss_mb"],
                    "MB",
                    r["peak_rss_mb"] / ours["peak_rss_mb"],
                )
            )
        if anchors:
            fastest = min(anchors, key=lambda t: anchors[t]["seconds"])
            speedup = anchors[fastest]["seconds"] / ours["seconds"]
            mem_ok = ours["peak_rss_mb"] <= anchors[fastest]["peak_rss_mb"]
            verdicts.append(
                f"[{'MET' if speedup >= 2 and mem_ok else 'NOT MET'}] training (ours): "
                f"{speedup:.1f}x faster than the fastest anchor ({fastest}, target >= 2x); peak "
                f"{ours['peak_rss_mb']:.0f} MB vs {anchors[fastest]['peak_rss_mb']:.0f} MB (target: no higher)"
            )
    if anchors and "seconds" in ours:
        print(
            "speed ratio (anchor seconds / ours): "
            + ", ".join(f"{t} {anchors[t]['seconds'] / ours['seconds']:.1f}x" for t in anchors)
        )

    print(f"\nEncoding: {enc_mb:.1f} MB sampled from the corpus ({args.reps} reps, best)")
    print(f"{'tool':15s} {'mode':22s} {'MB/s':>8s} {'ours/them':>10s}  same ids as ours")
    ours_speed = {r["mode"]: r["mb_per_s"] for r in enc_rows if r["tool"] == "ours"}
    for r in enc_rows:
        ratio = ours_speed[r["mode"]] / r["mb_per_s"]
        same = "-" if r["same_ids"] is None else ("yes" if r["same_ids"] else "NO")
        print(f"{r['tool']:15s} {r['mode']:22s} {r['mb_per_s']:8.1f} {ratio:9.1f}x  {same} {r['note']}")
        if r["tool"] != "ours":
            rows.append(
                (f"encode {r['mode']} MB/s", "ours", ours_speed[r["mode"]], r["tool"], r["mb_per_s"], "MB/s", ratio)
            )
    tk = {r["mode"]: r for r in enc_rows if r["tool"] == "tiktoken"}
    one, batch = "one string, 1 thread", f"batch, {args.threads} threads"
    r1 = ours_speed[one] / tk[one]["mb_per_s"]
    rb = ours_speed[batch] / tk[batch]["mb_per_s"]
    verdicts.append(
        f"[{'MET' if r1 >= 1.5 and tk[one]['same_ids'] else 'NOT MET'}] encode one string: {r1:.1f}x "
        f"tiktoken (target >= 1.5x), same ids: {tk[one]['same_ids']}"
    )
    verdicts.append(
        f"[{'MET' if rb >= 2 and tk[batch]['same_ids'] else 'NOT MET'}] encode batch: {rb:.1f}x "
        f"tiktoken's batch on {args.threads} threads (target >= 2x), same ids: {tk[batch]['same_ids']}"
    )
    print("\nTargets (issue 3):")
    for v in verdicts:
        print("  " + v)

    if not args.no_csv:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        new = not RESULTS.exists()
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(RESULTS, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(
                    [
                        "what",
                        "ours",
                        "ours_value",
                        "against",
                        "their_value",
                        "unit",
                        "ratio",
                        "machine",
                        "commit",
                        "date",
                    ]
                )
            for what, ours_name, ov, against, tv, unit, ratio in rows:
                w.writerow(
                    [
                        what,
                        ours_name,
                        f"{ov:.4g}",
                        against,
                        f"{tv:.4g}",
                        unit,
                        f"{ratio:.3f}",
                        machine(),
                        commit(),
                        stamp,
                    ]
                )
        print(f"\nappended {len(rows)} rows to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
