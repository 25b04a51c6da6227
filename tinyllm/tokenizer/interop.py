"""Our tokenizer in other tools' terms: Hugging Face `tokenizer.json` and tiktoken ranks, both ways.

No torch and no third-party import at module level: `tinyllm tokenizer export` stays fast.

Hugging Face (byte-level BPE, as GPT-2 writes it):
  - a token's string is its bytes through GPT-2's `bytes_to_unicode` table (printable stand-ins
    for every byte); the specials keep their names and are "added tokens" at ids 0..3;
  - the pre-tokenizer is Split(our regex, isolated) then ByteLevel(use_regex=False), so HF cuts
    text exactly where our split pattern does (the regex spelled for Oniguruma: HF_REGEX);
  - merges are string pairs applied by rank. We encode by tiktoken's rule instead (join the
    adjacent pair whose joined bytes are the lowest-id token, whichever two tokens form it, and
    a pre-token that is a whole token is that token). `hf_merges` lists, after each token's own
    merge, every other split of it into two tokens ("alias" merges) at the same place in the
    order, and the file sets `ignore_merges` (HF's whole-pre-token rule, made for Llama 3's
    tiktoken vocab), so HF's rank order is our id order.
    One case stays different: two overlapping pairs that both join into the SAME token
    (tokens "ab", "a", "ba" and "aba": [ab, a, ba]) - tiktoken joins the leftmost, HF the one
    listed first. It needs a token with two splits that both occur in one pre-token at once.

tiktoken: ranks are our ids (bytes b -> b + 4, merge i -> 260 + i); the specials 0..3 are
`special_tokens`. A ranks file has no merges: `merges_from_ranks` rebuilds one per token (of its
splits into two earlier tokens, the one whose newer half has the lowest id, leftmost on ties; that was the
trained merge for 97% of a 2,000-token Bible vocab). Encoding depends only on the vocabulary, so
the ids are the same even where the original merge was another split.
"""

from __future__ import annotations

import base64
import functools

from ..errors import TinyLLMError
from .patterns import BYTE_OFFSET, PATTERNS, SPECIAL_TOKENS

FIRST_MERGE_ID = BYTE_OFFSET + 256
# Our regexes as HF's Oniguruma (Ruby syntax) reads them the same: there `{1,3}+` is not possessive
# but "one or more of {1,3}" (any digit run as one piece); possessive or not, `\p{N}{1,3}` matches
# the same here, as nothing after it can backtrack into it. `++`, `?+`, `*+` mean what they mean.
HF_REGEX = {name: regex.replace("{1,3}+", "{1,3}") for name, regex in PATTERNS.items()}
SPECIALS_TEXT = " ".join(f"{name}={i}" for name, i in SPECIAL_TOKENS.items())


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE's token strings).

    Printable Latin-1 bytes stand for themselves; the other 68 get U+0100 onward, in order.

    >>> bytes_to_unicode()[ord("a")], bytes_to_unicode()[ord(" ")], bytes_to_unicode()[0]
    ('a', 'Ġ', 'Ā')
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def token_string(data: bytes) -> str:
    """A token's bytes as its byte-level BPE string: b' hi' -> 'Ġhi'."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in data)


def token_bytes_of(s: str, where: str) -> bytes:
    """The inverse of token_string; TinyLLMError naming `where` for a character outside the table."""
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in s)
    except KeyError:
        raise TinyLLMError(f"{where}: token {s!r} is not a byte-level BPE token string") from None


# --------------------------------------------------------------------------------------
# merges in Hugging Face's sense
# --------------------------------------------------------------------------------------
def hf_merges(tok) -> list[tuple[int, int]]:
    """Merge pairs (left id, right id) in rank order for HF: token t's own merge, then its
    other splits into two tokens (module docstring), for t = 260, 261, ...

    >>> from tinyllm.tokenizer.reference import Tokenizer
    >>> tok = Tokenizer([(101, 102), (102, 103), (260, 103)])  # bytes a b c are 101..103: ab=260, bc=261, abc=262
    >>> hf_merges(tok)  # abc is also a + bc
    [(101, 102), (102, 103), (260, 103), (101, 261)]
    """
    ranks = tok.mergeable_ranks()
    out: list[tuple[int, int]] = []
    for k, own in enumerate(tok.merges):
        out.append(own)
        data = tok.token_bytes(FIRST_MERGE_ID + k)
        for cut in range(1, len(data)):
            pair = (ranks.get(data[:cut]), ranks.get(data[cut:]))
            if None not in pair and pair != own:
                out.append(pair)
    return out


def hf_tokenizer_json(tok) -> str:
    """The tokenizer.json text for `tok`, built with the `tokenizers` library itself."""
    try:
        from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError:
        raise TinyLLMError(
            "exporting a Hugging Face tokenizer needs the tokenizers package (pip install tokenizers)"
        ) from None
    vocab = dict(SPECIAL_TOKENS)
    strings = list(vocab)
    for i in range(BYTE_OFFSET, tok.vocab_size):
        s = token_string(tok.token_bytes(i))
        vocab[s] = i
        strings.append(s)
    merges = [(strings[a], strings[b]) for a, b in hf_merges(tok)]
    hf = HFTokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(HF_REGEX[tok.pattern]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in SPECIAL_TOKENS])
    return hf.to_str(pretty=True)


# --------------------------------------------------------------------------------------
# reading tokenizer.json
# --------------------------------------------------------------------------------------
# HF ByteLevel(use_regex=True) splits with GPT-2's original regex: the same pieces as our "gpt2"
# pattern (tiktoken's r50k_base adds `\s++$` and ends in `\s` for `\s+`, which match the same text)
BYTELEVEL_REGEX_PATTERN = "gpt2"


def parse_hf_tokenizer_json(data: dict, where: str) -> tuple[str, list[tuple[int, int]]]:
    """A tokenizer.json dict -> (pattern name, merges) for Tokenizer(merges, pattern), or one
    TinyLLMError saying what tinyllm cannot represent exactly."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TinyLLMError(f"{where}: not a Hugging Face tokenizer.json (no 'model' object)")
    model = data["model"]
    if model.get("type") != "BPE":
        raise TinyLLMError(f"{where}: model type {model.get('type')!r}; tinyllm reads only byte-level BPE")
    for key, fine in (
        ("dropout", (None,)),
        ("continuing_subword_prefix", (None, "")),
        ("end_of_word_suffix", (None, "")),
    ):
        if model.get(key) not in fine:
            raise TinyLLMError(f"{where}: model.{key} is {model.get(key)!r}; tinyllm's BPE has none")
    if model.get("byte_fallback"):
        raise TinyLLMError(
            f"{where}: model.byte_fallback is set (a SentencePiece-style vocab); tinyllm's is byte-level"
        )
    if not model.get("ignore_merges"):
        raise TinyLLMError(
            f"{where}: model.ignore_merges is false: HF would split a pre-token that is itself a token, where "
            f"tinyllm (tiktoken's rule) keeps it whole"
        )
    if data.get("normalizer") is not None:
        raise TinyLLMError(f"{where}: it has a normalizer ({_kind(data['normalizer'])}); tinyllm normalizes nothing")
    pattern = _pattern_of(data.get("pre_tokenizer"), where)
    decoder = data.get("decoder")
    if not (isinstance(decoder, dict) and decoder.get("type") == "ByteLevel"):
        raise TinyLLMError(f"{where}: decoder is {_kind(decoder)}, not ByteLevel")
    post = data.get("post_processor")
    if not _adds_nothing(post):
        raise TinyLLMError(f"{where}: post_processor {_kind(post)} adds or changes ids; tinyllm adds none")
    _check_added_tokens(data.get("added_tokens") or [], where)
    strings = _check_vocab(model.get("vocab"), where)
    return pattern, _merges_of(model.get("merges") or [], strings, where)


def _adds_nothing(post) -> bool:
    """None, ByteLevel (offsets only), or the identity template transformers' save_pretrained writes."""
    if post is None or post.get("type") == "ByteLevel":
        return True
    single = post.get("single") or []
    return (
        post.get("type") == "TemplateProcessing"
        and not post.get("special_tokens")
        and len(single) == 1
        and (single[0].get("Sequence") or {}).get("id") == "A"
    )


def _kind(obj) -> str:
    return repr(obj.get("type")) if isinstance(obj, dict) else repr(obj)


def _pattern_of(pre, where: str) -> str:
    """The pattern name a pre-tokenizer splits like, or TinyLLMError describing it."""
    steps = pre.get("pretokenizers") if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    if (
        len(steps) == 1
        and isinstance(steps[0], dict)
        and steps[0].get("type") == "ByteLevel"
        and steps[0].get("use_regex", True)
        and not steps[0].get("add_prefix_space")
    ):
        return BYTELEVEL_REGEX_PATTERN
    if len(steps) == 2 and all(isinstance(s, dict) for s in steps):
        split, byte_level = steps
        regex = (split.get("pattern") or {}).get("Regex")
        if (
            split.get("type") == "Split"
            and split.get("behavior") == "Isolated"
            and not split.get("invert")
            and byte_level.get("type") == "ByteLevel"
            and not byte_level.get("use_regex", True)
            and not byte_level.get("add_prefix_space")
        ):
            for name, ours in HF_REGEX.items():
                if regex in (ours, PATTERNS[name]):
                    return name
            raise TinyLLMError(
                f"{where}: split pattern {regex!r} is not one of tinyllm's ({', '.join(sorted(PATTERNS))}: "
                f"tiktoken's cl100k_base and r50k_base regexes)"
            )
    raise TinyLLMError(
        f"{where}: pre_tokenizer is not one tinyllm splits like (expected Split(<gpt4|gpt2 regex>, isolated) + "
        f"ByteLevel(add_prefix_space=false, use_regex=false), or ByteLevel(add_prefix_space=false)); got {_kind(pre)}"
    )


def _check_added_tokens(added: list, where: str) -> None:
    got = {t.get("content"): t.get("id") for t in added if isinstance(t, dict)}
    if got != SPECIAL_TOKENS or not all(t.get("special") for t in added):
        shown = " ".join(f"{c}={i}" for c, i in sorted(got.items(), key=lambda x: (x[1] is None, x[1]))) or "none"
        raise TinyLLMError(f"{where}: special tokens {shown} differ from tinyllm's {SPECIALS_TEXT}")


def _check_vocab(vocab, where: str) -> list[str]:
    """id -> token string, after checking ids are 0..n-1 with the bytes at 4..259 in byte order."""
    if not isinstance(vocab, dict) or not vocab:
        raise TinyLLMError(f"{where}: model.vocab is missing or empty")
    strings = dict(zip(SPECIAL_TOKENS, range(BYTE_OFFSET)))
    strings.update(vocab)
    by_id = sorted((i, s) for s, i in strings.items())
    if [i for i, _ in by_id] != list(range(len(by_id))):
        raise TinyLLMError(f"{where}: vocab ids are not 0..{len(by_id) - 1}, each once")
    table = bytes_to_unicode()
    for b in range(256):
        i = BYTE_OFFSET + b
        if i >= len(by_id) or by_id[i][1] != table[b]:
            raise TinyLLMError(
                f"{where}: id {BYTE_OFFSET + b} is not byte {b} ({table[b]!r}); tinyllm's ids are the "
                f"{BYTE_OFFSET} specials, then the 256 bytes in order, then the merges"
            )
    return [s for _, s in by_id]


def _merges_of(raw: list, strings: list[str], where: str) -> list[tuple[int, int]]:
    """Each token's own merge (the first listed that makes it); the whole list must be what
    `hf_merges` writes for those merges, or HF would encode differently from us."""
    ids = {s: i for i, s in enumerate(strings)}
    pairs = []
    for k, m in enumerate(raw):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        a, b, joined = ids.get(left), ids.get(right), ids.get(left + right)
        if a is None or b is None or joined is None:
            raise TinyLLMError(f"{where}: merge {k} ({left!r} {right!r}) uses or makes a token not in the vocab")
        pairs.append((a, b, joined))
    own: dict[int, tuple[int, int]] = {}
    for a, b, joined in pairs:
        own.setdefault(joined, (a, b))
    made = list(own)
    if made != list(range(FIRST_MERGE_ID, len(strings))):
        raise TinyLLMError(
            f"{where}: merges do not make the tokens {FIRST_MERGE_ID}..{len(strings) - 1} in id order, one each; "
            f"tinyllm encodes by token id (tiktoken's rule), so merge rank must follow id"
        )
    merges = [own[t] for t in made]
    from .reference import Tokenizer

    expected = hf_merges(Tokenizer(merges))
    got = [(a, b) for a, b, _ in pairs]
    if got != expected:
        k = next((i for i, (x, y) in enumerate(zip(got, expected)) if x != y), min(len(got), len(expected)))
        raise TinyLLMError(
            f"{where}: merge list differs from tinyllm's rule at merge {k} (every split of each token into two "
            f"tokens, in token-id order, is what makes HF encode like tiktoken; {len(got)} merges, expected "
            f"{len(expected)})"
        )
    return merges


# --------------------------------------------------------------------------------------
# tiktoken
# --------------------------------------------------------------------------------------
def tiktoken_ranks_text(tok) -> str:
    """The `.tiktoken` file: one `base64(token bytes) rank` line per non-special token (tiktoken.load's format)."""
    ranks = tok.mergeable_ranks()
    return "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda x: x[1]))


def merges_from_ranks(ranks: dict, pat_str: str, special_tokens: dict, where: str) -> tuple[str, list]:
    """tiktoken's (mergeable_ranks, pat_str, special_tokens) -> (pattern name, merges), or TinyLLMError."""
    if dict(special_tokens) != SPECIAL_TOKENS:
        shown = " ".join(f"{k}={v}" for k, v in sorted(special_tokens.items(), key=lambda x: x[1])) or "none"
        raise TinyLLMError(f"{where}: special tokens {shown} differ from tinyllm's {SPECIALS_TEXT}")
    name = next((n for n, regex in PATTERNS.items() if regex == pat_str), None)
    if name is None:
        raise TinyLLMError(
            f"{where}: split pattern {pat_str!r} is not one of tinyllm's (gpt4 = cl100k_base's, gpt2 = r50k_base's)"
        )
    by_rank = sorted((r, t) for t, r in ranks.items())
    if [r for r, _ in by_rank] != list(range(BYTE_OFFSET, BYTE_OFFSET + len(by_rank))):
        raise TinyLLMError(f"{where}: ranks are not {BYTE_OFFSET}..{BYTE_OFFSET + len(by_rank) - 1}, each once")
    for b in range(256):
        if len(by_rank) <= b or by_rank[b][1] != bytes([b]):
            raise TinyLLMError(
                f"{where}: rank {BYTE_OFFSET + b} is not byte {b}; tinyllm's ranks start with the 256 bytes"
            )
    merges = []
    for r, data in by_rank[256:]:
        splits = [
            (ranks[data[:cut]], ranks[data[cut:]])
            for cut in range(1, len(data))
            if ranks.get(data[:cut], r) < r and ranks.get(data[cut:], r) < r
        ]
        pair = min(splits, key=max, default=None)  # the split that existed first: most often the trained merge
        if pair is None:
            raise TinyLLMError(
                f"{where}: token {r} ({data!r}) is not two earlier tokens joined; BPE builds every token so"
            )
        merges.append(pair)
    return name, merges


def tiktoken_sidecar(path: str) -> str:
    """Where the pattern and specials of a `.tiktoken` file live: `<file>.json` beside it."""
    return path + ".json"


def tiktoken_meta(tok, name: str) -> dict:
    """The sidecar's content: what tiktoken.Encoding needs besides the ranks."""
    return {
        "name": name,
        "pat_str": tok.pattern_regex,
        "special_tokens": tok.special_tokens,
        "explicit_n_vocab": tok.vocab_size,
    }


def read_json(path: str):
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise TinyLLMError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TinyLLMError(f"{path}: cannot read it ({e})") from None
    except ValueError as e:
        raise TinyLLMError(f"{path}: not valid JSON ({e})") from None


def read_tiktoken_file(path: str, pat_str: str | None, special_tokens: dict | None) -> tuple[dict, str, dict]:
    """(ranks, pat_str, special_tokens) of a `.tiktoken` file, read with tiktoken's own loader."""
    try:
        from tiktoken.load import load_tiktoken_bpe
    except ImportError:
        raise TinyLLMError("reading a .tiktoken file needs the tiktoken package (pip install tiktoken)") from None
    import os

    if not os.path.isfile(path):
        raise TinyLLMError(f"{path}: no such file")
    if pat_str is None or special_tokens is None:
        meta = read_json(tiktoken_sidecar(path))
        if not isinstance(meta, dict):
            raise TinyLLMError(f"{tiktoken_sidecar(path)}: expected a JSON object with pat_str and special_tokens")
        pat_str = meta.get("pat_str") if pat_str is None else pat_str
        special_tokens = meta.get("special_tokens") if special_tokens is None else special_tokens
        if not isinstance(pat_str, str) or not isinstance(special_tokens, dict):
            raise TinyLLMError(f"{tiktoken_sidecar(path)}: needs 'pat_str' (a string) and 'special_tokens' (an object)")
    try:
        ranks = load_tiktoken_bpe(path)
    except Exception as e:  # tiktoken raises ValueError / binascii.Error on a malformed line
        raise TinyLLMError(
            f"{path}: not a .tiktoken ranks file ({str(e).splitlines()[0][:120] if str(e) else e!r})"
        ) from None
    return ranks, pat_str, special_tokens
