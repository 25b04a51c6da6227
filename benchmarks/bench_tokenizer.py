"""Tokenizer benchmark: tinyllm's C++ BPE against HF tokenizers, rustbpe, sentencepiece
and tiktoken, on a >=100 MB corpus built from text already on this machine.

    python benchmarks/bench_tokenizer.py                  # builds the corpus on first run
    python benchmarks/bench_tokenizer.py --encode-mb 20 --threads 2 --vocab-size 32000
    python benchmarks/bench_tokenizer.py --formats        # ours on the corpus as .txt, .jsonl.zst, .parquet
    python benchmarks/bench_tokenizer.py --scaling 1,2    # encode_batch(_flat) and prepare on 1, 2 threads

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

--formats (issue 12): the corpus's documents written as JSON Lines + zstd and as Parquet (a record
is a document without its closing blank line, which the readers add back, so the three read as the
same bytes and must train the same merges: checked); Tokenizer.train(Path) on each in a fresh
subprocess, alternating, best of --reps, the reader's library imported before the timer; a second
("warm") call in the same process shows the steady state without first-use costs.
--scaling (issue 12): the first --scaling-mb MiB of the corpus cut into its blank-line documents;
encode(one string, 1 thread), encode_batch (lists) and encode_batch_flat (one buffer) on each thread
count, repetitions interleaved, ratios against 1 thread of the same call; then `prepare` of the same
text with 1, 2, ... workers.

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
import shutil
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
    """This process's peak RSS in MB: VmHWM, which an exec starts afresh (ru_maxrss keeps the parent's
    peak across fork + exec: workers started after --cli built its variants all read 657 MB)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def train_worker(tool: str, corpus: Path, vocab_size: int, threads: int, out: Path | None) -> dict:
    info = {"tool": tool}
    if tool == "ours":
        from tinyllm.tokenizer import Tokenizer

        info["torch_imported"] = "torch" in sys.modules
        info["import_rss_mb"] = _rss_mb()
        t = time.perf_counter()  # the reader's library (pyarrow, zstandard) is imported once, before the timing
        if corpus.suffix == ".parquet":
            import pyarrow.compute
            import pyarrow.parquet
        elif corpus.suffix == ".zst":
            import zstandard  # noqa: F401
        info["reader_import_s"] = time.perf_counter() - t
        t = time.perf_counter()
        tok = Tokenizer.train(corpus, vocab_size=vocab_size, num_threads=threads, show_progress=False)
        info["seconds"] = time.perf_counter() - t
        info["vocab"] = tok.vocab_size
        if os.environ.get("TINYLLM_BENCH_WARM"):  # --formats: a second call, with the readers' first-use costs paid
            t = time.perf_counter()
            Tokenizer.train(corpus, vocab_size=vocab_size, num_threads=threads, show_progress=False)
            info["warm_seconds"] = time.perf_counter() - t
        if out:
            tok.save(out)
    elif tool in ("cli-streamed", "cli-loaded"):  # --cli: what `tinyllm tokenizer train` trains from
        from tinyllm.cli.tokenizer import training_documents
        from tinyllm.data.corpus import load_corpus
        from tinyllm.tokenizer import Tokenizer

        if corpus.suffix == ".parquet":  # (the reader's import before the timing, as above)
            import pyarrow.compute
            import pyarrow.parquet  # noqa: F401
        info["import_rss_mb"] = _rss_mb()
        t = time.perf_counter()
        if tool == "cli-streamed":  # now: the documents streamed (tokenizer.Paragraphs, cut in C++)
            texts = training_documents(str(corpus), "text", "fail")
        else:  # before: every document loaded into a list of str first
            texts = load_corpus(str(corpus)).tokenizer_texts()
        tok = Tokenizer.train(texts, vocab_size=vocab_size, num_threads=threads, show_progress=False)
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
# --formats: the same corpus as .txt, .jsonl.zst and .parquet (issue 12)
# ---------------------------------------------------------------------------------------
def format_variants(corpus: Path, out_dir: Path) -> dict[str, Path]:
    """The corpus's documents as JSON Lines + zstd and as Parquet: each record is a document without
    its closing blank line, which the reader adds back, so all three read as the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    docs = [d.removesuffix("\n\n") for d in load_documents(corpus)]
    jsonl, parquet = out_dir / "corpus.jsonl.zst", out_dir / "corpus.parquet"
    with open(jsonl, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as z:
        for i in range(0, len(docs), 1000):
            z.write("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs[i : i + 1000]).encode())
    pq.write_table(pa.table({"text": docs}), parquet, row_group_size=1000)  # ~10 MB row groups here
    return {".txt": corpus, ".jsonl.zst": jsonl, ".parquet": parquet}


def run_formats(corpus: Path, vocab_size: int, threads: int, reps: int, tmp: Path) -> list[tuple]:
    """Tokenizer.train(Path(variant)) per format, each in its own subprocess, alternating, best of reps;
    -> rows against .txt (the merges must be identical: checked)."""
    variants = format_variants(corpus, tmp)
    os.environ["TINYLLM_BENCH_WARM"] = "1"  # the workers also time a second, warm call
    best, warm, saved, imports = {}, {}, {}, {}
    for _ in range(reps):
        for name, path in variants.items():
            out = tmp / f"formats{name}.tok"
            r = run_train("ours", path, vocab_size, threads, out)
            if "error" in r:
                raise SystemExit(f"training on {path} failed: {r['error']}")
            best[name] = min(best.get(name, float("inf")), r["seconds"])
            imports[name] = r["reader_import_s"]
            warm[name] = min(warm.get(name, float("inf")), r["warm_seconds"])
            saved[name] = out.read_text()
    size_mb = corpus.stat().st_size / 1e6
    print(f"\nTokenizer training on the same {size_mb:.0f} MB, vocab {vocab_size}, {threads} threads (best of {reps})")
    print("  first call: a fresh process (its reader's library imported before the timer, its first use inside)")
    print("  warm call:  a second call in that process")
    rows = []
    for name, path in variants.items():
        same = saved[name] == saved[".txt"]
        print(
            f"  {name:11s} {path.stat().st_size / 1e6:7.1f} MB on disk  first {best[name]:5.2f} s "
            f"({best[name] / best['.txt']:4.2f}x .txt)  warm {warm[name]:5.2f} s ({warm[name] / warm['.txt']:4.2f}x .txt)"
            f"  import {imports[name]:.2f} s  same merges: {'yes' if same else 'NO'}"
        )
        if name != ".txt":
            for kind, t in (("first call", best), ("warm call", warm)):
                rows.append(
                    (
                        f"train {size_mb:.0f}MB vocab {vocab_size} {threads}thr seconds, {name}, {kind}",
                        "ours " + name,
                        t[name],
                        "ours .txt",
                        t[".txt"],
                        "s",
                        t[".txt"] / t[name],
                    )
                )
    return rows


def one_paragraph_variant(corpus: Path, out_dir: Path) -> Path:
    """The corpus's documents one per line, no blank line: one paragraph, so one document of 100 MB
    (the layout of many corpora: a document per line), which the CLI cuts open (tokenizer.OpenBlock)."""
    from tinyllm.data.corpus import load_documents as paragraphs  # (the corpus's own: whole source files)

    path = out_dir / "one_paragraph.txt"
    path.write_text("".join(d.removesuffix("\n\n") + "\n" for d in paragraphs(corpus)), encoding="utf-8")
    return path


def run_cli_routes(corpus: Path, vocab_size: int, threads: int, reps: int, tmp: Path) -> list[tuple]:
    """`tinyllm tokenizer train`'s input per format, streamed (now) against loaded into documents first
    (before), each run in its own subprocess, alternating, best of reps; -> rows (merges checked equal:
    to .txt's, and streamed to loaded for the one-paragraph file, whose one document trains otherwise)."""
    variants = format_variants(corpus, tmp) | {"1 par .txt": one_paragraph_variant(corpus, tmp)}
    best, peak, saved = {}, {}, {}
    for _ in range(reps):
        for name, path in variants.items():
            for route in ("cli-streamed", "cli-loaded"):
                out = tmp / f"{route}{name}.tok"
                r = run_train(route, path, vocab_size, threads, out)
                if "error" in r:
                    raise SystemExit(f"{route} on {path} failed: {r['error']}")
                key = (name, route)
                best[key] = min(best.get(key, float("inf")), r["seconds"])
                peak[key] = min(peak.get(key, float("inf")), r["peak_rss_mb"])
                saved[key] = out.read_text()
    size_mb = corpus.stat().st_size / 1e6
    print(
        f"\n`tinyllm tokenizer train` input, {size_mb:.0f} MB, vocab {vocab_size}, {threads} threads (best of {reps})"
    )
    print("  streamed: tokenizer.Paragraphs of the read blocks; loaded: every document a str in a list first")
    rows, same_txt = [], saved[(".txt", "cli-streamed")]
    for name in variants:
        s_, l_ = (name, "cli-streamed"), (name, "cli-loaded")
        same = saved[s_] == saved[l_] and (name == "1 par .txt" or saved[s_] == same_txt)
        print(
            f"  {name:11s} streamed {best[s_]:5.2f} s {peak[s_]:6.0f} MB   loaded {best[l_]:5.2f} s {peak[l_]:6.0f} MB"
            f"   {best[l_] / best[s_]:4.2f}x faster, {peak[l_] / peak[s_]:4.1f}x less memory; "
            f"streamed {best[s_] / best[('.txt', 'cli-streamed')]:4.2f}x .txt's time   same merges: {'yes' if same else 'NO'}"
        )
        what = f"tokenizer train CLI {size_mb:.0f}MB vocab {vocab_size} {threads}thr, {name}"
        rows.append(
            (f"{what}, seconds", "ours streamed", best[s_], "ours loaded first", best[l_], "s", best[l_] / best[s_])
        )
        rows.append(
            (f"{what}, peak RSS", "ours streamed", peak[s_], "ours loaded first", peak[l_], "MB", peak[l_] / peak[s_])
        )
    return rows


# ---------------------------------------------------------------------------------------
# --scaling: encode_batch on 1, 2, ... threads (issue 12)
# ---------------------------------------------------------------------------------------
def scaling_documents(corpus: Path, megabytes: float) -> list[str]:
    """The first `megabytes` of the corpus cut into its blank-line documents (paragraphs, + "\n\n")."""
    import re

    text = corpus.read_bytes()[: int(megabytes * (1 << 20))].decode("utf-8", "ignore")
    return [p + "\n\n" for p in re.split(r"\n\s*\n", text) if p.strip()]


def two_threads(fn, args: list) -> None:
    """fn(a) for each a in args, each on its own thread, all at once."""
    import threading

    ts = [threading.Thread(target=fn, args=(a,)) for a in args]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def run_scaling(tok_path: Path, corpus: Path, megabytes: float, thread_counts: list[int], reps: int) -> list[tuple]:
    """MB/s of encode (one string), encode_batch (lists), encode_batch_flat (one buffer) and
    encode_paragraphs_flat (the text whole, cut into the same documents in C++: what `prepare` calls)
    on the same documents, each thread count against 1 thread of the same call; repetitions interleaved."""
    from tinyllm.tokenizer import Tokenizer

    tok = Tokenizer.load(tok_path)
    docs = scaling_documents(corpus, megabytes)
    whole = "".join(docs)
    whole_utf8 = whole.encode()  # what prepare hands over for a plain text file
    mb = len(whole_utf8) / 1e6
    print(f"\nencode_batch scaling: {mb:.1f} MB in {len(docs):,} blank-line documents, best of {reps}", file=sys.stderr)
    calls = {"one string": lambda: tok.encode(whole)}
    # two independent encodes: the documents' two halves as one text each, on two Python threads at
    # once, against the same two one after the other; no batch code involved. Once called "the
    # ceiling", it is not one: each half grows one ids buffer of 6M ids (the batch calls write
    # 64 KB blocks), and the batch calls beat it in each of the three runs on 2026-12-02.
    # (encode_batch_flat of one text on one thread: encode() would also build each half's list
    # of ints under the GIL, one half at a time.)
    halves = ["".join(docs[: len(docs) // 2]), "".join(docs[len(docs) // 2 :])]

    def encode_one(text: str) -> None:
        tok.encode_batch_flat([text], num_threads=1)

    calls["halves in turn"] = lambda: [encode_one(h) for h in halves]
    calls["halves at once"] = lambda: two_threads(encode_one, halves)
    for n in thread_counts:
        calls[f"batch {n}"] = lambda n=n: tok.encode_batch(docs, num_threads=n)
        calls[f"flat {n}"] = lambda n=n: tok.encode_batch_flat(docs, num_threads=n)
        calls[f"paragraphs {n}"] = lambda n=n: tok.encode_paragraphs_flat([whole], num_threads=n)
        calls[f"utf8 {n}"] = lambda n=n: tok.encode_paragraphs_flat([whole_utf8], num_threads=n)
    best = dict.fromkeys(calls, float("inf"))
    want = None
    for _ in range(reps):
        for name, fn in calls.items():
            t = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - t)
            if name == "batch 1" and want is None:
                want = result
            del result
    ids, offsets = tok.encode_batch_flat(docs, num_threads=thread_counts[-1])
    pids, poffsets, _, _ = tok.encode_paragraphs_flat([whole], num_threads=thread_counts[-1])
    uids, uoffsets, _, _ = tok.encode_paragraphs_flat([whole_utf8], num_threads=thread_counts[-1])
    same = (
        tok.encode_batch(docs, num_threads=thread_counts[-1]) == want
        and [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])] == want
        and (pids == ids).all()
        and (poffsets == offsets).all()
        and (uids == ids).all()
        and (uoffsets == offsets).all()
    )
    speed = {k: mb / v for k, v in best.items()}
    print(f"  {'one string, 1 thread':40s} {speed['one string']:7.1f} MB/s")
    halves_ratio = speed["halves at once"] / speed["halves in turn"]
    print(f"  {'two halves, 2 threads':40s} {speed['halves at once']:7.1f} MB/s  {halves_ratio:4.2f}x in turn")
    rows = [
        (
            f"encode two halves {mb:.0f}MB at once (2 threads) MB/s",
            "ours",
            speed["halves at once"],
            "ours encode the two halves in turn",
            speed["halves in turn"],
            "MB/s",
            halves_ratio,
        )
    ]
    labels = {
        "batch": "encode_batch (lists)",
        "flat": "encode_batch_flat",
        "paragraphs": "encode_paragraphs_flat",
        "utf8": "encode_paragraphs_flat, UTF-8 bytes",
    }
    for kind, label in labels.items():
        for n in thread_counts:
            r = speed[f"{kind} {n}"] / speed[f"{kind} 1"]
            print(
                f"  {label + f', {n} thread' + ('s' if n > 1 else ''):40s} {speed[f'{kind} {n}']:7.1f} MB/s  "
                f"{r:4.2f}x its 1 thread  {speed[f'{kind} {n}'] / speed['one string']:4.2f}x one string"
            )
            if n > 1:
                rows.append(
                    (
                        f"{label} {mb:.0f}MB {len(docs)} docs, {n} threads MB/s",
                        "ours",
                        speed[f"{kind} {n}"],
                        f"ours {label}, 1 thread",
                        speed[f"{kind} 1"],
                        "MB/s",
                        r,
                    )
                )
        rows.append(
            (
                f"{label} {mb:.0f}MB {len(docs)} docs, 1 thread MB/s",
                "ours",
                speed[f"{kind} 1"],
                "ours encode one string, 1 thread",
                speed["one string"],
                "MB/s",
                speed[f"{kind} 1"] / speed["one string"],
            )
        )
    print(f"  same ids in every call: {'yes' if same else 'NO'}")
    rows += run_prepare_scaling(tok_path, whole, thread_counts, reps)
    return rows


def run_prepare_scaling(tok_path: Path, text: str, thread_counts: list[int], reps: int, copies: int = 4) -> list[tuple]:
    """`tinyllm prepare` (the API call) of the same text as one .txt file on 1, 2, ... workers, alternating,
    each run into a fresh --out (no older set to delete); then of the text `copies` times over, whose
    extra time over the first is prepare less what it spends once whatever the size (loading the
    tokenizer before the first encode, the last shard and meta.json after the last), which no thread
    count shortens."""
    from tinyllm.data.prepare import prepare

    with tempfile.TemporaryDirectory(prefix="tinyllm-prepare-") as d:
        srcs = {1: Path(d) / "docs.txt", copies: Path(d) / f"docs{copies}.txt"}
        srcs[1].write_text(text, encoding="utf-8")
        srcs[copies].write_text(text * copies, encoding="utf-8")
        mb = {k: f.stat().st_size / 1e6 for k, f in srcs.items()}
        best = {(k, n): float("inf") for k in srcs for n in thread_counts}
        for rep in range(reps):
            for k, n in best:
                out = Path(d) / f"out{k}-{n}-{rep}"
                t = time.perf_counter()
                prepare([str(srcs[k])], tok_path, out, workers=n, progress=False)
                best[k, n] = min(best[k, n], time.perf_counter() - t)
                shutil.rmtree(out)
    rows = []
    for k, label in ((1, f"{mb[1]:.0f}MB"), (copies, f"{mb[copies]:.0f}MB ({copies} copies)")):
        for n in thread_counts:
            r = best[k, 1] / best[k, n]
            name = f"prepare {label}, {n} worker" + ("s" if n > 1 else "")
            print(f"  {name:40s} {mb[k] / best[k, n]:7.1f} MB/s  {best[k, n]:6.3f} s  {r:4.2f}x 1 worker")
            if n > 1:
                rows.append(prepare_row(f"prepare {label}, {n} workers MB/s", mb[k] / best[k, n], mb[k] / best[k, 1]))
    extra = mb[copies] - mb[1]
    for n in thread_counts:
        r = (best[copies, 1] - best[1, 1]) / (best[copies, n] - best[1, n])
        name = f"prepare, the extra {extra:.0f} MB, {n} worker" + ("s" if n > 1 else "")
        print(f"  {name:40s} {extra / (best[copies, n] - best[1, n]):7.1f} MB/s  {r:4.2f}x 1 worker")
        if n > 1:
            what = f"prepare, the extra {extra:.0f}MB of {mb[copies]:.0f}MB over {mb[1]:.0f}MB, {n} workers MB/s"
            rows.append(
                prepare_row(what, extra / (best[copies, n] - best[1, n]), extra / (best[copies, 1] - best[1, 1]))
            )
    return rows


def prepare_row(what: str, ours: float, one_worker: float) -> tuple:
    """A tokenizer.csv row of prepare's MB/s against its own 1-worker MB/s."""
    return (what, "ours", ours, "ours prepare, 1 worker", one_worker, "MB/s", ours / one_worker)


def write_rows(rows: list[tuple]) -> None:
    """Append (what, ours, ours_value, against, their_value, unit, ratio) rows to tokenizer.csv."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(RESULTS, "a", newline="") as f:
        w = csv.writer(f)
        for what, ours_name, ov, against, tv, unit, ratio in rows:
            w.writerow(
                [what, ours_name, f"{ov:.4g}", against, f"{tv:.4g}", unit, f"{ratio:.3f}", machine(), commit(), stamp]
            )
    print(f"appended {len(rows)} rows to {RESULTS}", file=sys.stderr)


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
    ap.add_argument(
        "--formats", action="store_true", help="only: train ours on the corpus as .txt, .jsonl.zst and .parquet"
    )
    ap.add_argument(
        "--cli",
        action="store_true",
        help="only: `tinyllm tokenizer train`'s input per format, streamed against loaded into documents first",
    )
    ap.add_argument(
        "--scaling",
        default=None,
        metavar="THREADS",
        help="only: encode_batch / encode_batch_flat on these thread counts (e.g. 1,2 or 1,2,16) on --scaling-mb",
    )
    ap.add_argument("--scaling-mb", type=float, default=50, help="MiB of the corpus, in blank-line documents")
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
    if args.formats or args.scaling or args.cli:
        rows = []
        if args.formats:
            rows += run_formats(corpus, args.vocab_size, args.threads, args.reps, tmp)
        if args.cli:
            rows += run_cli_routes(corpus, args.vocab_size, args.threads, args.reps, tmp)
        if args.scaling:
            r = run_train("ours", corpus, args.vocab_size, args.threads, tok_path)
            if "error" in r:
                raise SystemExit(f"training failed: {r['error']}")
            threads = [int(t) for t in args.scaling.split(",")]
            rows += run_scaling(tok_path, corpus, args.scaling_mb, sorted({1, *threads}), args.reps)
        print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)  # the corpus's .jsonl.zst and .parquet copies
        if not args.no_csv:
            write_rows(rows)
        return

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
                w.writerow(provenance.RESULT_COLUMNS)
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
