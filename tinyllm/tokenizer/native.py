"""The C++-backed tokenizer: the reference API with the hot paths in tinyllm._bpe.

Everything a user can get wrong is checked here, in Python, with the reference's
messages; the C++ core (csrc/) only sees arguments that passed. Training, encoding and
decoding run with the GIL released. Results are identical to the reference
(tests/test_tokenizer_native.py checks merges and ids on random text).
"""

from __future__ import annotations

import functools
import os
import threading

from .. import _bpe, usable_cores
from ..errors import TinyLLMError
from . import inputs
from .patterns import MIN_VOCAB_SIZE, SPECIAL_TOKENS, check_pattern
from .reference import Tokenizer as ReferenceTokenizer
from .reference import _progress, check_batch_args, check_train_args, finish_training, ranks_of

_TEXT_BATCH_BYTES = 8 << 20  # texts are handed to C++ in batches of about this size
_BLOCK_BATCH_BYTES = 1 << 20  # ... and Paragraphs blocks (a read each: the workers start after the first)
_ALL_SPECIALS = (1 << len(SPECIAL_TOKENS)) - 1


default_threads = usable_cores  # every core this process may run on


def _run_with_progress(fn, counter, bar):
    """Run fn() on a helper thread (the C++ releases the GIL) while this thread moves the bar (if
    any) by counter(); re-raise whatever fn raised. The waiting thread is the main one, so Ctrl-C
    and SIGTERM handlers run within 0.1 s even while the C++ works for minutes."""
    result, error = [], []

    def target():
        try:
            result.append(fn())
        except BaseException as e:  # handed to the caller's thread
            error.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    shown = 0
    while t.is_alive():
        t.join(0.1)
        if bar is not None:
            now = counter()
            bar.update(now - shown)
            shown = now
    if bar is not None:
        bar.close()
    if error:
        raise error[0]
    return result[0]


class _Counter:
    """Feeds everything to train on to the C++ trainer's counting workers (on a helper thread)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.seen: list = []  # (kind, file or None) per source, for finish_training's messages
        self.invalid: list = []  # (file, replaced): warned from the caller's thread once counting is done

    def add_streamed(self, path) -> None:
        # .gz/.zst text and Parquet: their UTF-8 bytes go to C++ as read (repaired, counted and cut
        # there, like add_file's); JSON Lines: parsed in C++ where it can, else here (below). Either
        # way this thread reads on while the C++ workers count (the calls return once queued).
        formats = inputs.formats()
        if formats.kind_of(path).format == "jsonl":
            if formats.has_orjson():
                # the lines C++ can decide go from the read bytes to the stream (csrc/jsonl_text.h);
                # the texts of the rest come back here in order and join the same stream
                field = formats.DEFAULT.text_field
                for text, _ in formats.feed_jsonl(path, lambda lines: self.trainer.add_jsonl(lines, field)):
                    if text:
                        self.trainer.add_stream_text(text)
                self.trainer.add_bytes(b"", final=True)  # (valid UTF-8 only: nothing was replaced)
                return
            for segment in inputs.iter_file_segments(path):
                self.trainer.add_texts([segment], wait=False)
            return
        for data, _ in inputs.formats().read_utf8(path):
            self.trainer.add_bytes(data)
        _, replaced = self.trainer.add_bytes(b"", final=True)
        if replaced:
            self.invalid.append((path, replaced))

    def add_file(self, path) -> None:
        if not inputs.is_plain_text(path):
            self.add_streamed(path)
            return
        inputs.check_plain_text(path)  # binary data is refused before C++ counts it
        try:
            _, replaced = self.trainer.add_file(os.fspath(path))
        except RuntimeError as e:  # the C++ message names the file and the OS error
            raise TinyLLMError(str(e)) from None
        if replaced:
            self.invalid.append((path, replaced))

    def count(self, files_or_texts) -> int:
        """Texts go in batches of about _TEXT_BATCH_BYTES, Paragraphs blocks of _BLOCK_BATCH_BYTES, files
        one by one; -> pre-tokens counted. A batch of blocks returns once it is copied into work chunks,
        so the caller reads the next blocks while the workers count these."""
        batch: list = []
        size, batch_kind = 0, "text"

        def flush() -> None:
            nonlocal batch, size
            if batch:
                if batch_kind == "text":
                    self.trainer.add_texts(batch)
                else:
                    self.trainer.add_paragraphs(batch, wait=False)
            batch, size = [], 0

        for kind, obj in inputs.iter_sources(files_or_texts):
            self.seen.append(inputs.seen_entry(kind, obj))
            if kind == "paragraphs" and obj[2]:  # an OpenBlock: its last piece without "\n\n" (counts add up
                self.trainer.add_paragraphs([obj[1]], wait=False, open_end=True)  # in any order)
                continue
            if kind in ("text", "paragraphs"):
                if kind != batch_kind:
                    flush()
                    batch_kind = kind
                text = obj if kind == "text" else obj[1]
                batch.append(text)
                size += len(text)
                if size >= (_TEXT_BATCH_BYTES if kind == "text" else _BLOCK_BATCH_BYTES):
                    flush()
                continue
            flush()
            self.add_file(obj)
        flush()
        return self.trainer.num_pretokens()


class NativeTokenizer(ReferenceTokenizer):
    """Byte-level BPE with the C++ core; same API and results as the reference."""

    def _build_tables(self) -> None:
        # The C++ tables only, which check the merges as the reference does, in its words. The
        # reference's own vocab and ranks (with its regexes, half of loading a 32k tokenizer) are
        # made when a reference method first asks, which encoding never does.
        try:
            self._native = _bpe.Encoder(self._merges, self._pattern_name)
        except (ValueError, TypeError) as e:  # (TypeError: an id that is no uint32)
            super()._build_tables()  # the reference's message for what is wrong
            raise TinyLLMError(f"merges: {e}") from None

    @functools.cached_property
    def _vocab(self) -> list[bytes]:
        return self._native.token_bytes()

    @functools.cached_property
    def _ranks(self) -> dict[bytes, int]:
        return ranks_of(self._vocab)

    @property
    def vocab_size(self) -> int:
        return self._native.vocab_size

    @classmethod
    def train(
        cls,
        files_or_texts,
        vocab_size: int = 32000,
        pattern: str = "gpt4",
        num_threads: int | None = None,
        show_progress: bool = True,
    ) -> NativeTokenizer:
        """Learn vocab_size - 260 merges; counting runs on num_threads threads (default: all cores).

        files_or_texts as in the reference (a str that looks like a file name is refused).
        """
        check_train_args(vocab_size, num_threads)
        pattern = check_pattern(pattern)
        trainer = _bpe.Trainer(pattern, num_threads or default_threads())
        counter = _Counter(trainer)
        bar = _progress(show_progress, unit="B", unit_scale=True, desc="reading corpus") if show_progress else None
        try:
            n_pretokens = _run_with_progress(lambda: counter.count(files_or_texts), lambda: trainer.bytes_read, bar)
        finally:
            for path, replaced in counter.invalid:
                inputs.warn_invalid_utf8(path, replaced)
        n_merges = vocab_size - MIN_VOCAB_SIZE
        merges = []
        if n_pretokens:
            bar = _progress(show_progress, total=n_merges, desc="merging") if show_progress else None
            merges = _run_with_progress(lambda: trainer.train(n_merges), lambda: trainer.merges_done, bar)
        finish_training(merges, vocab_size, counter.seen, n_pretokens)
        return cls(merges, pattern)

    def encode(self, text: str, allowed_special="all") -> list[int]:
        if type(text) is not str:
            self._check_text(text, "encode")
        return self._native.encode(text, self._special_mask(allowed_special))

    def encode_ordinary(self, text: str) -> list[int]:
        if type(text) is not str:
            self._check_text(text, "encode_ordinary")
        return self._native.encode(text, 0)

    def encode_batch(self, texts, num_threads: int | None = None, allowed_special="all") -> list[list[int]]:
        """Encode many texts on num_threads threads (default: all cores), GIL released."""
        texts = check_batch_args(texts, num_threads)
        return self._native.encode_batch(texts, self._special_mask(allowed_special), num_threads or default_threads())

    def encode_batch_flat(self, texts, num_threads: int | None = None, allowed_special="all"):
        """encode_batch's ids in one buffer -> (ids: uint32 numpy array, offsets: int64 numpy array of
        len(texts) + 1), text i being ids[offsets[i]:offsets[i + 1]]: no Python int or list per id, so
        nothing serial is left after the threads finish (what `tinyllm prepare` uses)."""
        texts = check_batch_args(texts, num_threads)
        return self._native.encode_batch_flat(
            texts, self._special_mask(allowed_special), num_threads or default_threads()
        )

    def encode_paragraphs_flat(self, texts, num_threads: int | None = None, allowed_special="all"):
        """The documents tinyllm.data.corpus cuts from whole texts (the paragraphs between blank
        lines, each + "\n\n"; csrc/paragraphs.h), encoded -> (ids, offsets of the documents, number
        of documents of each text, characters of each text's documents): encode_batch_flat of those
        documents, without a Python string per document (`tinyllm prepare` hands the encoder whole
        blocks of text). A text may be bytes of valid UTF-8 (check with tinyllm._bpe.utf8_valid),
        cut and encoded as its decoded str would be: prepare then decodes no plain text file."""
        texts = check_batch_args(texts, num_threads, (str, bytes))
        return self._native.encode_paragraphs_flat(
            texts, self._special_mask(allowed_special), num_threads or default_threads()
        )

    def paragraph_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each document's paragraph in `text`, as encode_paragraphs_flat cuts it."""
        return self._native.paragraph_spans(text)

    def decode_bytes(self, ids) -> bytes:
        try:
            return self._native.decode_bytes(ids)
        except (TypeError, ValueError, IndexError, OverflowError):
            return super().decode_bytes(ids)  # raises the reference's message (or copes with odd int types)

    def _special_mask(self, allowed_special) -> int:
        if allowed_special == "all":
            return _ALL_SPECIALS
        mask = 0
        for name in self._allowed_specials(allowed_special):
            mask |= 1 << self._specials[name]
        return mask
