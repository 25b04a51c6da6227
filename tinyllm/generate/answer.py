"""Asking a Q&A model: wrap the question in the training template, stream the answer,
stop at <EOS>.

The model was trained on `<BOS> Question: {q}\\nAnswer: {a} <EOS>`, so the answer it
writes starts with the space after "Answer:" and ends with the space before <EOS>;
neither belongs to the answer, so `trim_stream` drops them without holding back the
rest of the stream.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..data.qa import format_prompt
from .decode import generate_ids, stream_text


def trim_stream(pieces: Iterator[str]) -> Iterator[str]:
    """Strip leading and trailing whitespace from a stream of text pieces.

    Leading whitespace is dropped; whitespace inside the text is held back only until
    the next visible character arrives, so a trailing run is never emitted.
    """
    started, held = False, ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            if not piece:
                continue
            started = True
        body = piece.rstrip()
        if body:
            yield held + body
            held = piece[len(body) :]
        else:
            held += piece


def stream_answer(
    model,
    tokenizer,
    question: str,
    max_tokens: int = 200,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """The answer to `question`, piece by piece as it is generated (greedy by default)."""
    ids = tokenizer.encode(format_prompt(question))
    out = generate_ids(model, ids, max_tokens, temperature, top_k, top_p, tokenizer.eos_id, seed)
    return trim_stream(stream_text(tokenizer, out))


def answer(model, tokenizer, question: str, **kwargs) -> str:
    """The whole answer to `question` as one string (see stream_answer for the arguments)."""
    return "".join(stream_answer(model, tokenizer, question, **kwargs))
