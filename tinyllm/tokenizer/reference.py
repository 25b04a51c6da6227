"""Byte-level BPE in pure Python: the readable spec the C++ core (csrc/) must match.

Token ids: the special tokens <PAD>=0, <UNK>=1, <BOS>=2, <EOS>=3; then the 256 byte
values (byte b is id b + 4); then one id per learned merge, in the order learned.

Training, step by step:
  1. Split every document on special tokens (they are never learned), cut it into
     pre-tokens with the split pattern (patterns.py), and count each distinct pre-token.
     Files stream (inputs.py); nothing holds the whole corpus in memory.
  2. Each distinct pre-token becomes a "word": its UTF-8 bytes as ids, with its count.
  3. Count adjacent id pairs over all words, weighted by word count.
  4. Repeat until vocab_size: take the most frequent pair; ties go to the smallest
     (left id, right id) - THE tie-break rule, shared with the C++ core. Replace every
     occurrence in the words that contain it, left to right, and update only the pair
     counts around each replaced occurrence. A max-heap holds (count, pair) entries
     that may be stale; a popped entry whose count is out of date is pushed back with
     the current count (lazy invalidation).
  5. If the merged bytes already are a token (the pair (a, bc) after (ab, c) made
     "abc"), the occurrences are rewritten to that token and no new id is spent, so
     every id has a distinct byte string (tiktoken needs that).

Encoding a pre-token (the same rule as tiktoken, so `to_tiktoken()` agrees id for id):
  if its bytes are a token, that token; otherwise start from single bytes and
  repeatedly join the adjacent pair whose joined bytes form the token of lowest id
  (leftmost on ties), until no adjacent pair joins into a token.

Special tokens in text are matched before pre-tokenization (leftmost match; at the same
position the longest name) and are never split; `allowed_special="none"` reads them as
ordinary text.

Strings with lone surrogates (not valid Unicode, but legal Python str) are encoded with
"surrogatepass" and decoded back, so decode(encode(s)) == s for every str.
"""

from __future__ import annotations

import codecs
import functools
import heapq
import operator
import os
import warnings
from collections import Counter
from collections.abc import Iterable

import regex

from ..errors import TinyLLMError
from . import inputs
from .format import parse_tokenizer_text, tokenizer_text
from .patterns import BYTE_OFFSET, MIN_VOCAB_SIZE, PATTERNS, SPECIAL_TOKENS, check_pattern

FIRST_MERGE_ID = MIN_VOCAB_SIZE  # 260
_ENCODE_CACHE_MAX = 1 << 16
DUPLICATE_MERGE_MESSAGE = "merges define the same byte string twice (every token must be distinct)"


def bad_merge_message(i: int, a: int, b: int) -> str:
    return f"merge {i} ({a}, {b}) refers to a token id that is special or not defined yet"


def ranks_of(vocab: list[bytes]) -> dict[bytes, int]:
    """Byte string -> id of every non-special token."""
    return {tb: i for i, tb in enumerate(vocab) if i >= BYTE_OFFSET}


# --------------------------------------------------------------------------------------
# decode error handling: restore surrogates, replace everything else like "replace"
# --------------------------------------------------------------------------------------
def _surrogate_or_replace(err: UnicodeDecodeError):
    """Decode a 3-byte surrogate (ED A0..BF 80..BF, what "surrogatepass" writes) back to
    the surrogate; anything else invalid becomes U+FFFD exactly as errors="replace"."""
    b = err.object
    i = err.start
    if i + 3 <= len(b) and b[i] == 0xED and 0xA0 <= b[i + 1] <= 0xBF and 0x80 <= b[i + 2] <= 0xBF:
        return chr(((b[i] & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F)), i + 3
    return "\ufffd", err.end


def _hex_bytes(err: UnicodeDecodeError):
    """Show undecodable bytes as <0xNN> (the token_strings view of a partial character)."""
    return "".join(f"<0x{x:02X}>" for x in err.object[err.start : err.end]), err.end


codecs.register_error("tinyllm.surrogate_or_replace", _surrogate_or_replace)
codecs.register_error("tinyllm.hex_bytes", _hex_bytes)


def to_utf8(text: str) -> bytes:
    """UTF-8 bytes of any str (lone surrogates as their 3-byte form)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------------------
# the two small functions BPE is made of
# --------------------------------------------------------------------------------------
def get_pair_counts(words: list[list[int]], counts: list[int]) -> Counter:
    """Count adjacent pairs over all words, each word weighted by its count.

    >>> get_pair_counts([[1, 2, 3], [1, 2]], [10, 1])
    Counter({(1, 2): 11, (2, 3): 10})
    """
    pairs: Counter = Counter()
    for word, c in zip(words, counts):
        for pair in zip(word, word[1:]):
            pairs[pair] += c
    return pairs


def merge_word(word: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of pair in word by new_id, scanning left to right.

    >>> merge_word([1, 1, 1, 2, 1, 1], (1, 1), 9)
    [9, 1, 2, 9]
    """
    a, b = pair
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
def count_pretokens(
    files_or_texts, pattern: str = "gpt4", show_progress: bool = False, sources_seen: list | None = None
) -> Counter:
    """Step 1: distinct pre-tokens (as str) -> count, over all texts and files.

    >>> count_pretokens(["hi hi", "hi<EOS>!"])
    Counter({'hi': 2, ' hi': 1, '!': 1})
    """
    pat = regex.compile(PATTERNS[pattern])
    special = _special_regex(SPECIAL_TOKENS)
    counts: Counter = Counter()
    sources_seen = [] if sources_seen is None else sources_seen

    def add(segment: str) -> None:
        for part in special.split(segment)[::2]:  # odd parts are special tokens: never learned
            if part:
                counts.update(pat.findall(part))

    bar = _progress(show_progress, unit="B", unit_scale=True, desc="reading corpus")
    shown = not isinstance(bar, _NoBar)  # sizes are UTF-8 encodes: only worth it for a bar
    carry = ""  # an OpenBlock's text, which the next block's first paragraph goes on with
    for kind, obj in inputs.iter_sources(files_or_texts):
        sources_seen.append(inputs.seen_entry(kind, obj))
        if kind == "text":
            add(obj)
            if shown:
                bar.update(inputs.source_size(kind, obj))
        elif kind == "paragraphs":
            _, block, is_open = obj
            if shown:
                bar.update(len(block) if isinstance(block, bytes) else inputs.source_size("text", block))
            text = carry + (block.decode() if isinstance(block, bytes) else block)
            if is_open:  # the paragraph whole, once the blocks that go on with it are here
                carry = text
                continue
            carry = ""
            for doc in inputs.paragraphs(text):
                add(doc)
        else:
            for segment in inputs.iter_file_segments(obj):
                add(segment)
                if shown:
                    bar.update(len(to_utf8(segment)))
    bar.close()
    return counts


def train_merges(
    pretoken_counts: dict[str, int], n_merges: int, show_progress: bool = False, stats: dict | None = None
) -> list[tuple[int, int]]:
    """Steps 2-5: learn up to n_merges merges; return them as (left id, right id) in
    order (the id of merge i is 260 + i; alias merges of step 5 are not returned, only
    counted in stats["aliases"] when a stats dict is given).

    >>> train_merges({"ab": 1, "ba": 1}, 2)  # (a, b) and (b, a) both count 1: smaller ids first
    [(101, 102), (102, 101)]
    """
    words: list[list[int]] = [[b + BYTE_OFFSET for b in to_utf8(w)] for w in pretoken_counts]
    counts: list[int] = list(pretoken_counts.values())
    pair_counts, where = _index_pairs(words, counts)
    heap = _pair_heap(pair_counts)
    token_bytes: list[bytes] = [b""] * BYTE_OFFSET + [bytes([i]) for i in range(256)]
    id_of_bytes: dict[bytes, int] = {tb: i for i, tb in enumerate(token_bytes) if i >= BYTE_OFFSET}
    merges: list[tuple[int, int]] = []
    bar = _progress(show_progress, total=n_merges, desc="merging")

    while len(merges) < n_merges:
        pair = _pop_most_frequent(heap, pair_counts)
        if pair is None:  # no pair left anywhere: the corpus is fully merged
            break
        new_id, is_new = _token_for_pair(pair, token_bytes, id_of_bytes)
        if is_new:
            merges.append(pair)
            bar.update(1)
        elif stats is not None:  # alias merge (step 5): rewrite into the existing token, spend no id
            stats["aliases"] = stats.get("aliases", 0) + 1
        changed = _merge_pair_in_words(pair, new_id, words, counts, pair_counts, where)
        _push_pairs(heap, pair_counts, changed)
    bar.close()
    return merges


def _index_pairs(words: list[list[int]], counts: list[int]) -> tuple[dict, dict]:
    """Step 3 plus an index: pair -> weighted count, and pair -> indices of the words that
    may contain it (entries go stale when a word changes; they are skipped when the word
    no longer has the pair).

    >>> _index_pairs([[1, 2, 3], [1, 2]], [10, 1])
    ({(1, 2): 11, (2, 3): 10}, {(1, 2): {0, 1}, (2, 3): {0}})
    """
    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for wi, (word, c) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + c
            where.setdefault(pair, set()).add(wi)
    return pair_counts, where


def _pair_heap(pair_counts: dict[tuple[int, int], int]) -> list[tuple[int, int, int]]:
    """heapq is a min-heap: (-count, left, right) pops the largest count, then the
    smallest left id, then the smallest right id - the documented tie-break.

    >>> heapq.heappop(_pair_heap({(7, 9): 5, (8, 1): 5, (2, 3): 4}))
    (-5, 7, 9)
    """
    heap = [(-c, a, b) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    return heap


def _pop_most_frequent(heap: list, pair_counts: dict[tuple[int, int], int]) -> tuple[int, int] | None:
    """Pop the best pair whose heap entry is up to date, or None once the heap is empty.

    Entries may be stale (lazy invalidation): one whose count is out of date is pushed
    back with the current count, or dropped if the pair is gone.

    >>> heap = [(-5, 1, 2), (-4, 3, 4)]  # (1, 2) has since dropped to 3
    >>> _pop_most_frequent(heap, {(1, 2): 3, (3, 4): 4}), heap
    ((3, 4), [(-3, 1, 2)])
    """
    while heap:
        neg, a, b = heapq.heappop(heap)
        current = pair_counts.get((a, b), 0)
        if current == -neg:
            return a, b
        if current > 0:  # stale entry: requeue with the up-to-date count
            heapq.heappush(heap, (-current, a, b))
    return None


def _token_for_pair(pair: tuple[int, int], token_bytes: list[bytes], id_of_bytes: dict[bytes, int]) -> tuple[int, bool]:
    """The id the merged pair becomes, and whether it is new (step 5: if the joined bytes
    already are a token, that token, and no id is spent). A new token is appended.

    >>> token_bytes, id_of_bytes = [b"a", b"b", b"ab"], {b"a": 0, b"b": 1, b"ab": 2}
    >>> _token_for_pair((0, 1), token_bytes, id_of_bytes), _token_for_pair((1, 0), token_bytes, id_of_bytes)
    ((2, False), (3, True))
    """
    a, b = pair
    joined = token_bytes[a] + token_bytes[b]
    new_id = id_of_bytes.get(joined)
    if new_id is not None:
        return new_id, False
    new_id = len(token_bytes)
    token_bytes.append(joined)
    id_of_bytes[joined] = new_id
    return new_id, True


def _merge_pair_in_words(
    pair: tuple[int, int],
    new_id: int,
    words: list[list[int]],
    counts: list[int],
    pair_counts: dict[tuple[int, int], int],
    where: dict[tuple[int, int], set[int]],
) -> set[tuple[int, int]]:
    """Step 4's rewrite: merge `pair` into new_id in every word that contains it, moving
    each such word's pairs out of pair_counts and its merged pairs back in. Returns the
    pairs with new_id in them (new or grown, so they need a fresh heap entry).

    >>> words, counts = [[1, 2, 1, 2], [1, 3]], [1, 1]
    >>> pair_counts, where = _index_pairs(words, counts)
    >>> _merge_pair_in_words((1, 2), 9, words, counts, pair_counts, where), words
    ({(9, 9)}, [[9, 9], [1, 3]])
    >>> pair_counts
    {(2, 1): 0, (1, 3): 1, (9, 9): 1}
    """
    a, b = pair
    changed: set[tuple[int, int]] = set()
    for wi in sorted(where.pop(pair, ())):
        word, c = words[wi], counts[wi]
        if not _contains_pair(word, a, b):
            continue
        for p in zip(word, word[1:]):  # this word's pairs leave the counts...
            pair_counts[p] -= c
        word = words[wi] = merge_word(word, pair, new_id)
        for p in zip(word, word[1:]):  # ...and its merged pairs come back
            pair_counts[p] = pair_counts.get(p, 0) + c
            if new_id in p:
                where.setdefault(p, set()).add(wi)
                changed.add(p)
    pair_counts.pop(pair, None)
    return changed


def _push_pairs(heap: list, pair_counts: dict[tuple[int, int], int], pairs: set[tuple[int, int]]) -> None:
    """Give each of `pairs` a fresh heap entry with its current count. Pairs that only lost
    count keep their (now stale, too high) entry: _pop_most_frequent fixes it on the way out."""
    for pair in pairs:
        c = pair_counts.get(pair, 0)
        if c > 0:
            heapq.heappush(heap, (-c, pair[0], pair[1]))


def _contains_pair(word: list[int], a: int, b: int) -> bool:
    return any(x == a and y == b for x, y in zip(word, word[1:]))


def _special_regex(specials: Iterable[str]) -> regex.Pattern:
    """Alternation of the special names, longest first (longest wins at one position)."""
    names = sorted(specials, key=lambda s: (-len(s), s))
    return regex.compile("(" + "|".join(regex.escape(s) for s in names) + ")") if names else regex.compile("(?!)")


def _progress(enabled: bool, **kw):
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(**kw, leave=False)
        except ImportError:  # tqdm is a dependency, but a bar is never worth a crash
            pass
    return _NoBar()


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def check_train_args(vocab_size, num_threads) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TinyLLMError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < MIN_VOCAB_SIZE:
        raise TinyLLMError(
            f"vocab_size={vocab_size} is too small: it must be at least {MIN_VOCAB_SIZE} "
            f"({len(SPECIAL_TOKENS)} special tokens + 256 bytes)"
        )
    _check_num_threads(num_threads, "")


def _check_num_threads(num_threads, where: str) -> None:
    """num_threads is None or an int >= 1 (not a bool); `where` prefixes the message."""
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise TinyLLMError(f"{where}num_threads must be None or a positive int, got {num_threads!r}")


def finish_training(merges, vocab_size: int, sources_seen, n_pretokens: int) -> None:
    """Shared end-of-training checks: an empty corpus is an error, a short vocab a warning."""
    if n_pretokens == 0:
        where = inputs.describe_sources(sources_seen)
        raise TinyLLMError(
            "the training corpus is empty: "
            + (f"no text in {where}" if sources_seen else "no texts or files were given")
        )
    reached = MIN_VOCAB_SIZE + len(merges)
    if reached < vocab_size:
        warnings.warn(
            f"vocab_size={vocab_size} is more than this corpus can reach: training stopped at "
            f"vocab size {reached} (no adjacent pair left to merge)",
            inputs.CorpusWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------
# the tokenizer
# --------------------------------------------------------------------------------------


def check_batch_args(texts, num_threads, types: tuple = (str,)) -> list:
    """encode_batch's contract (both implementations): a list of str (or of `types`), num_threads None or >= 1."""
    if isinstance(texts, (str, bytes)):
        raise TinyLLMError(
            f"encode_batch: texts must be a list of str, got a single {type(texts).__name__}; use encode() for one text"
        )
    _check_num_threads(num_threads, "encode_batch: ")
    texts = texts if isinstance(texts, list) else list(texts)
    if not all(type(t) in types for t in texts):
        i, t = next((i, t) for i, t in enumerate(texts) if type(t) not in types)
        want = " or ".join(k.__name__ for k in types)
        raise TinyLLMError(f"encode_batch: texts[{i}] must be {want}, got {type(t).__name__}")
    return texts


class Tokenizer:
    """Byte-level BPE tokenizer (pure Python). See the module docstring for the rules."""

    def __init__(self, merges: Iterable[tuple[int, int]] = (), pattern: str = "gpt4"):
        self._setup(check_pattern(pattern), [(int(a), int(b)) for a, b in merges])

    @classmethod
    def _of_merges(cls, pattern: str, merges: list[tuple[int, int]]) -> Tokenizer:
        """A tokenizer of merges that are a list of (int, int) already, and a checked pattern name
        (what the file parser gives): __init__ without its copy of every merge."""
        tok = cls.__new__(cls)
        tok._setup(pattern, merges)
        return tok

    def _setup(self, pattern: str, merges: list[tuple[int, int]]) -> None:
        self._pattern_name = pattern
        self._merges = merges
        self._specials = dict(SPECIAL_TOKENS)
        self._cache: dict[bytes, list[int]] = {}
        self._text: str | None = None  # to_str(), once asked
        self._build_tables()

    def _build_tables(self) -> None:
        """What encode and decode look up, checking the merges (the native class builds its own)."""
        vocab: list[bytes] = [name.encode() for name in self._specials] + [bytes([i]) for i in range(256)]
        for i, (a, b) in enumerate(self._merges):
            new_id = FIRST_MERGE_ID + i
            if not (BYTE_OFFSET <= a < new_id and BYTE_OFFSET <= b < new_id):
                raise TinyLLMError(bad_merge_message(i, a, b))
            vocab.append(vocab[a] + vocab[b])
        self._vocab = vocab  # id -> bytes (special ids -> their name, what decode prints)
        self._ranks = ranks_of(vocab)
        if len(self._ranks) != len(vocab) - BYTE_OFFSET:
            raise TinyLLMError(DUPLICATE_MERGE_MESSAGE)

    @functools.cached_property
    def _pat(self):
        return regex.compile(PATTERNS[self._pattern_name])

    @functools.cached_property
    def _special_all(self):
        return _special_regex(self._specials)

    # ---- training --------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        files_or_texts,
        vocab_size: int = 32000,
        pattern: str = "gpt4",
        num_threads: int | None = None,
        show_progress: bool = True,
    ) -> Tokenizer:
        """Learn vocab_size - 260 merges from texts (str) and files/directories (paths).

        files_or_texts: a str, a pathlib.Path, a `Texts`, or an iterable of them. A str is
        always text: one that looks like a file name ("corpus.txt", "data/", an existing
        path; inputs.path_like) raises instead of training on its characters, so pass files
        as Path, and documents that may look like file names in `Texts`.
        num_threads is accepted for API parity; the reference is single-threaded.
        """
        check_train_args(vocab_size, num_threads)
        pattern = check_pattern(pattern)
        seen: list = []
        counts = count_pretokens(files_or_texts, pattern, show_progress, seen)
        merges = train_merges(counts, vocab_size - MIN_VOCAB_SIZE, show_progress) if counts else []
        finish_training(merges, vocab_size, seen, len(counts))
        return cls(merges, pattern)

    # ---- encoding --------------------------------------------------------------------
    def encode(self, text: str, allowed_special="all") -> list[int]:
        """Text -> ids. allowed_special: "all", "none", or a set of special token names."""
        self._check_text(text, "encode")
        allowed = self._allowed_specials(allowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        special = self._special_all if len(allowed) == len(self._specials) else _special_regex(allowed)
        ids: list[int] = []
        for i, part in enumerate(special.split(text)):
            if i % 2:  # odd parts are the matched special names
                ids.append(self._specials[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text with no special-token handling (every character is ordinary text)."""
        ids: list[int] = []
        for piece in self._pat.findall(text):
            ids.extend(self._encode_piece(to_utf8(piece)))
        return ids

    def encode_batch(self, texts, num_threads: int | None = None, allowed_special="all") -> list[list[int]]:
        """Encode many texts (the reference runs them one after another)."""
        texts = check_batch_args(texts, num_threads)
        return [self.encode(t, allowed_special) for t in texts]

    def _encode_piece(self, piece: bytes) -> list[int]:
        """One pre-token's bytes -> ids, by the tiktoken rule (module docstring)."""
        whole = self._ranks.get(piece)
        if whole is not None:
            return [whole]
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        parts = [piece[i : i + 1] for i in range(len(piece))]
        while len(parts) > 1:
            best_rank, best_i = None, -1
            for i in range(len(parts) - 1):
                rank = self._ranks.get(parts[i] + parts[i + 1])
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_i = rank, i
            if best_rank is None:
                break
            parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        ids = [self._ranks[p] for p in parts]
        if len(self._cache) >= _ENCODE_CACHE_MAX:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    # ---- decoding --------------------------------------------------------------------
    def decode_bytes(self, ids) -> bytes:
        """Ids -> the raw bytes they stand for (special ids give their names)."""
        vocab = self._vocab
        return b"".join([vocab[i] for i in self._check_ids(ids)])

    def decode(self, ids) -> str:
        """Ids -> text; invalid UTF-8 (a sequence cut mid-character) becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", "tinyllm.surrogate_or_replace")

    def token_strings(self, text_or_ids) -> list[str]:
        """The human view: each token's text with spaces shown as '▁' (U+2581).

        Bytes that are not whole UTF-8 characters show as <0xNN>; specials by name.
        """
        ids = self.encode(text_or_ids) if isinstance(text_or_ids, str) else self._check_ids(text_or_ids)
        out = []
        for i in ids:
            if i < BYTE_OFFSET:
                out.append(self._vocab[i].decode())
            else:
                out.append(self._vocab[i].decode("utf-8", "tinyllm.hex_bytes").replace(" ", "\u2581"))
        return out

    # ---- the vocabulary --------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def pattern(self) -> str:
        """The split pattern's name ("gpt4" or "gpt2"); `pattern_regex` is the regex."""
        return self._pattern_name

    @property
    def pattern_regex(self) -> str:
        """The split pattern's regex (tiktoken's pat_str); `pattern` is only its name."""
        return PATTERNS[self._pattern_name]

    @property
    def merges(self) -> list[tuple[int, int]]:
        """Learned merges (left id, right id); merge i made id 260 + i."""
        return list(self._merges)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    pad_id = property(lambda self: self._specials["<PAD>"])
    unk_id = property(lambda self: self._specials["<UNK>"])
    bos_id = property(lambda self: self._specials["<BOS>"])
    eos_id = property(lambda self: self._specials["<EOS>"])

    def token_bytes(self, token_id: int) -> bytes:
        return self._vocab[self._check_ids([token_id])[0]]

    def mergeable_ranks(self) -> dict[bytes, int]:
        """Byte string of each non-special token -> its rank (= its id)."""
        return dict(self._ranks)

    def to_tiktoken(self, name: str = "tinyllm"):
        """A tiktoken.Encoding with the same pattern, ranks and special ids."""
        try:
            import tiktoken
        except ImportError:
            raise TinyLLMError("to_tiktoken() needs the tiktoken package (pip install tiktoken)") from None
        return tiktoken.Encoding(
            name=name,
            pat_str=self.pattern_regex,
            mergeable_ranks=self.mergeable_ranks(),
            special_tokens=self.special_tokens,
        )

    @classmethod
    def from_tiktoken(cls, source, pat_str: str | None = None, special_tokens: dict | None = None) -> Tokenizer:
        """A tokenizer from tiktoken: a `tiktoken.Encoding`, or a `.tiktoken` ranks file (its pattern and
        specials from pat_str/special_tokens, else from the `<file>.json` that `tinyllm tokenizer export`
        writes beside it). Only what tinyllm represents exactly is accepted (interop.merges_from_ranks)."""
        from .interop import merges_from_ranks, read_tiktoken_file

        if hasattr(source, "_mergeable_ranks"):  # a tiktoken.Encoding: its ranks have no public getter
            where, ranks = f"tiktoken encoding {source.name!r}", source._mergeable_ranks
            pat_str = source._pat_str if pat_str is None else pat_str
            special_tokens = source._special_tokens if special_tokens is None else special_tokens
        else:
            where = os.fspath(source)
            ranks, pat_str, special_tokens = read_tiktoken_file(where, pat_str, special_tokens)
        pattern, merges = merges_from_ranks(ranks, pat_str, special_tokens, where)
        return cls(merges, pattern)

    @classmethod
    def from_hf_json(cls, source) -> Tokenizer:
        """A tokenizer from a Hugging Face `tokenizer.json` (a path, or the parsed dict) whose split
        pattern, specials, byte layout and merges tinyllm represents exactly; else one TinyLLMError
        saying what differs (interop.parse_hf_tokenizer_json)."""
        from .interop import parse_hf_tokenizer_json, read_json

        where = "tokenizer.json" if isinstance(source, dict) else os.fspath(source)
        data = source if isinstance(source, dict) else read_json(where)
        pattern, merges = parse_hf_tokenizer_json(data, where)
        return cls(merges, pattern)

    # ---- save / load -----------------------------------------------------------------
    def to_str(self) -> str:
        """The save format as a string (checkpoints embed the tokenizer this way). Made once: a
        tokenizer never changes, and prepare asks three times (two saves and the hash), each a repr
        of every token."""
        if self._text is None:
            self._text = tokenizer_text(self._pattern_name, self._specials, self._merges, self._vocab)
        return self._text

    @classmethod
    def from_str(cls, s: str, source: str = "<string>") -> Tokenizer:
        if not isinstance(s, str):
            raise TinyLLMError(f"{source}: a tokenizer must be given as str, got {type(s).__name__}")
        pattern, merges = parse_tokenizer_text(s, source)
        return cls._of_merges(pattern, merges)

    def save(self, path: str | os.PathLike) -> None:
        """Write the versioned text format atomically (temp file, then rename)."""
        from ..io import atomic_open

        with atomic_open(path, "w") as f:
            f.write(self.to_str())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise TinyLLMError(f"tokenizer file {path} does not exist") from None
        except IsADirectoryError:
            raise TinyLLMError(f"tokenizer file {path} is a directory") from None
        except OSError as e:
            raise TinyLLMError(f"cannot read tokenizer file {path}: {e.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TinyLLMError(f"{path} is not a tinyllm tokenizer file (it is not UTF-8 text)") from None
        return cls.from_str(text, source=path)

    # ---- misc ------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Tokenizer) and self._pattern_name == other._pattern_name and self._merges == other._merges
        )

    def __hash__(self):
        return hash((self._pattern_name, len(self._merges)))

    def __reduce__(self):
        # pickles (DataLoader workers, deepcopy) rebuild from the merges: the native
        # core's state is not picklable and is cheap to rebuild
        return type(self), (self._merges, self._pattern_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, pattern={self._pattern_name!r})"

    def _check_text(self, text, where: str) -> None:
        if not isinstance(text, str):
            raise TinyLLMError(f"{where}: text must be str, got {type(text).__name__}")

    def _allowed_specials(self, allowed_special) -> set[str]:
        if isinstance(allowed_special, str):
            if allowed_special == "all":
                return set(self._specials)
            if allowed_special == "none":
                return set()
            raise TinyLLMError(
                f"allowed_special must be 'all', 'none' or a set of special token names, got {allowed_special!r}"
            )
        try:
            allowed = set(allowed_special)
        except TypeError:
            raise TinyLLMError(
                f"allowed_special must be 'all', 'none' or a set of special token names, "
                f"got {type(allowed_special).__name__}"
            ) from None
        unknown = sorted(str(a) for a in allowed - set(self._specials))
        if unknown:
            raise TinyLLMError(f"allowed_special: unknown special token(s) {unknown}; known: {list(self._specials)}")
        return allowed

    def _check_ids(self, ids) -> list[int]:
        """ids as a list of Python ints, each checked to be a valid id."""
        if isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Iterable):
            raise TinyLLMError(f"ids must be a sequence of ints, got {type(ids).__name__}")
        ids = list(ids)
        if not all(type(i) is int for i in ids):
            try:
                ids = [operator.index(i) for i in ids]  # numpy integers are fine, floats are not
            except TypeError:
                bad = next(i for i in ids if not hasattr(i, "__index__"))
                raise TinyLLMError(f"ids must be ints, got {type(bad).__name__} {bad!r}") from None
        n = len(self._vocab)
        if ids and not (min(ids) >= 0 and max(ids) < n):
            bad = next(i for i in ids if not 0 <= i < n)
            raise TinyLLMError(f"token id {bad} is out of range for vocab_size {n}")
        return ids
